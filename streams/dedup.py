"""Duplicate detection by event_id within the dedup horizon, for one partition.

Ids are kept in event-time buckets and forgotten once a bucket falls behind stream time by
more than the horizon. Each batch persists only the ids it added (one table key per
bucket per batch), never the whole growing set.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["BUCKET_MS", "Deduplicator"]

BUCKET_MS = 60_000


class Deduplicator:
    def __init__(self, horizon_ms: int) -> None:
        self._horizon_ms = horizon_ms
        self._bucket_of: dict[str, int] = {}
        self._buckets: dict[int, list[str]] = {}
        self._added: dict[int, list[str]] = {}

    def seen(self, event_id: str, ts_ms: int) -> bool:
        """True for a duplicate; otherwise remembers the id and returns False."""
        if event_id in self._bucket_of:
            return True
        bucket = ts_ms - ts_ms % BUCKET_MS
        self._remember(bucket, [event_id])
        self._added.setdefault(bucket, []).append(event_id)
        return False

    def restore(self, bucket: int, ids: Iterable[str]) -> None:
        self._remember(bucket, list(ids))

    def _remember(self, bucket: int, ids: list[str]) -> None:
        self._buckets.setdefault(bucket, []).extend(ids)
        for event_id in ids:
            self._bucket_of[event_id] = bucket

    def take_added(self) -> dict[int, list[str]]:
        """Ids added since the last call, by bucket: what the batch must persist."""
        added, self._added = self._added, {}
        return added

    def expire(self, stream_ms: int) -> list[int]:
        """Forget buckets wholly older than the horizon; returns the buckets dropped."""
        cutoff = stream_ms - self._horizon_ms - BUCKET_MS
        dropped = [bucket for bucket in self._buckets if bucket < cutoff]
        for bucket in dropped:
            for event_id in self._buckets.pop(bucket):
                if self._bucket_of.get(event_id) == bucket:
                    del self._bucket_of[event_id]
        return dropped
