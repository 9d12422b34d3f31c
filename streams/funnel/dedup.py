"""Duplicate detection by event_id within the dedup horizon, for one partition.

Ids are kept in event-time buckets and forgotten once a bucket falls behind stream time by
more than the horizon. Each batch persists only the ids it added (one table key per
bucket per batch), never the whole growing set.

A late event is remembered apart from an on-time one: a late copy must not make its
on-time original a duplicate (the original, read from another input partition, may still
reach an open window), but a second late copy is a duplicate of the first.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = ["BUCKET_MS", "Admission", "Deduplicator"]

BUCKET_MS = 60_000


class Admission(enum.Enum):
    NEW = enum.auto()
    DUPLICATE = enum.auto()


class _IdSet:
    """Ids by event-time bucket, with what was added since the last `take_added`."""

    def __init__(self) -> None:
        self.bucket_of: dict[str, int] = {}
        self.buckets: dict[int, list[str]] = {}
        self.added: dict[int, list[str]] = {}

    def add(self, bucket: int, ids: list[str], *, new: bool) -> None:
        self.buckets.setdefault(bucket, []).extend(ids)
        for event_id in ids:
            self.bucket_of[event_id] = bucket
        if new:
            self.added.setdefault(bucket, []).extend(ids)

    def take_added(self) -> dict[int, list[str]]:
        added, self.added = self.added, {}
        return added

    def expire(self, cutoff: int) -> list[int]:
        dropped = [bucket for bucket in self.buckets if bucket < cutoff]
        for bucket in dropped:
            for event_id in self.buckets.pop(bucket):
                if self.bucket_of.get(event_id) == bucket:
                    del self.bucket_of[event_id]
        return dropped


class Deduplicator:
    def __init__(self, horizon_ms: int) -> None:
        self._horizon_ms = horizon_ms
        self._on_time = _IdSet()
        self._late = _IdSet()

    def admit(self, event_id: str, ts_ms: int, *, late: bool) -> Admission:
        """DUPLICATE for an id already admitted on time, or (for a late event) late;
        otherwise remembers the id and returns NEW."""
        if event_id in self._on_time.bucket_of or (late and event_id in self._late.bucket_of):
            return Admission.DUPLICATE
        ids = self._late if late else self._on_time
        ids.add(ts_ms - ts_ms % BUCKET_MS, [event_id], new=True)
        return Admission.NEW

    def restore(self, bucket: int, on_time: Iterable[str], late: Iterable[str] = ()) -> None:
        self._on_time.add(bucket, list(on_time), new=False)
        self._late.add(bucket, list(late), new=False)

    def take_added(self) -> dict[int, tuple[list[str], list[str]]]:
        """Ids added since the last call, by bucket, (on time, late): what the batch must
        persist."""
        on_time, late = self._on_time.take_added(), self._late.take_added()
        return {b: (on_time.get(b, []), late.get(b, [])) for b in on_time.keys() | late.keys()}

    def expire(self, stream_ms: int) -> list[int]:
        """Forget buckets wholly older than the horizon; returns the buckets dropped."""
        cutoff = stream_ms - self._horizon_ms - BUCKET_MS
        return sorted(set(self._on_time.expire(cutoff)) | set(self._late.expire(cutoff)))
