"""The keys that may turn slow-moving (docs/api.md): OK keys with stock, by the event time
at which they turn slow if nothing sells (their quiet due time).

A sale moves a key's due time on; a hot SKU sells every second, so keys live in one-minute
buckets of due time (moved from bucket to bucket, never duplicated) rather than in a heap
that would keep every superseded entry until it came due.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["BUCKET_MS", "QuietIndex"]

BUCKET_MS = 60_000


class QuietIndex:
    def __init__(self) -> None:
        self._due: dict[str, int] = {}
        self._buckets: dict[int, set[str]] = {}

    def __len__(self) -> int:
        return len(self._due)

    def due_of(self, key: str) -> int | None:
        return self._due.get(key)

    def set(self, key: str, due_ms: int | None) -> None:
        """The key's due time (None: it cannot turn slow, forget it)."""
        old = self._due.get(key)
        if old == due_ms:
            return
        if old is not None:
            bucket = self._buckets[old // BUCKET_MS]
            bucket.discard(key)
            if not bucket:
                del self._buckets[old // BUCKET_MS]
        if due_ms is None:
            self._due.pop(key, None)
            return
        self._due[key] = due_ms
        self._buckets.setdefault(due_ms // BUCKET_MS, set()).add(key)

    def pop_due(self, latest_ms: int, now_of: Callable[[str], int | None]) -> list[str]:
        """Remove and return the keys whose own partition's event time (`now_of(key)`, None:
        unknown) reached their due time; `latest_ms` bounds the buckets looked at."""
        found = []
        for bucket in sorted(b for b in self._buckets if b * BUCKET_MS <= latest_ms):
            keys = self._buckets[bucket]
            for key in list(keys):
                now_ms = now_of(key)
                if now_ms is not None and self._due[key] <= now_ms:
                    keys.discard(key)
                    del self._due[key]
                    found.append(key)
            if not keys:
                del self._buckets[bucket]
        return found

    def clear(self) -> None:
        self._due.clear()
        self._buckets.clear()
