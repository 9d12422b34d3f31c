"""Groups encoded events into contract-sized batch messages, one per topic and store.

A batch message is a JSON array of events of one input topic (docs/contract.md §1) and, here,
of one store, so it can be keyed by `store_id`. It closes when the next event would break
a limit (events or bytes) or when its oldest event has waited `linger_ms`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sdk.errors import InvalidEventError
from streams.contract.decoding import MAX_BATCH_EVENTS, MAX_MESSAGE_BYTES, RejectReason
from streams.contract.errors import ConfigError
from streams.contract.events import TopicKind

__all__ = ["DEFAULT_BATCH_BYTES", "Batch", "Batcher"]

# Stay clear of the broker's default message.max.bytes (1 MiB + 12, record overhead
# included) while keeping messages large; the contract allows up to MAX_MESSAGE_BYTES.
DEFAULT_BATCH_BYTES = 900 * 1024
_EMPTY_ARRAY_BYTES = 2  # "[]"


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


@dataclass(slots=True)
class Batch:
    kind: TopicKind
    store_id: str
    opened_ms: int
    events: list[bytes] = field(default_factory=list)
    size: int = _EMPTY_ARRAY_BYTES  # bytes of the JSON array, brackets and commas included

    def size_with(self, encoded: bytes) -> int:
        return self.size + len(encoded) + (1 if self.events else 0)

    def append(self, encoded: bytes) -> None:
        self.size = self.size_with(encoded)
        self.events.append(encoded)

    @property
    def key(self) -> bytes:
        return self.store_id.encode()

    @property
    def value(self) -> bytes:
        return b"[" + b",".join(self.events) + b"]"


class Batcher:
    """Not thread-safe: the client holds a lock around it."""

    def __init__(
        self,
        max_events: int = MAX_BATCH_EVENTS,
        max_bytes: int = DEFAULT_BATCH_BYTES,
        linger_ms: int = 20,
        clock_ms: Callable[[], int] = _monotonic_ms,
    ) -> None:
        if not 1 <= max_events <= MAX_BATCH_EVENTS:
            raise ConfigError(f"max_batch_events must be 1-{MAX_BATCH_EVENTS}, got {max_events}")
        if not 1024 <= max_bytes <= MAX_MESSAGE_BYTES:
            raise ConfigError(f"max_batch_bytes must be 1024-{MAX_MESSAGE_BYTES}, got {max_bytes}")
        if linger_ms < 0:
            raise ConfigError(f"linger_ms must be >= 0, got {linger_ms}")
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.linger_ms = linger_ms
        self._clock_ms = clock_ms
        self._open: dict[tuple[TopicKind, str], Batch] = {}  # insertion order = age order

    def __len__(self) -> int:
        """Events waiting in open batches."""
        return sum(len(batch.events) for batch in self._open.values())

    def add(self, kind: TopicKind, store_id: str, encoded: bytes) -> list[Batch]:
        """Add one encoded event; returns the batches that are now complete, oldest first."""
        if _EMPTY_ARRAY_BYTES + len(encoded) > self.max_bytes:
            raise InvalidEventError(
                RejectReason.BATCH_TOO_LARGE,
                f"one event of {len(encoded)} bytes exceeds max_batch_bytes={self.max_bytes}",
            )
        complete: list[Batch] = []
        slot = (kind, store_id)
        batch = self._open.get(slot)
        if batch is not None and batch.size_with(encoded) > self.max_bytes:
            complete.append(self._open.pop(slot))
            batch = None
        if batch is None:
            batch = self._open[slot] = Batch(kind, store_id, self._clock_ms())
        batch.append(encoded)
        if len(batch.events) >= self.max_events or self.linger_ms == 0:
            complete.append(self._open.pop(slot))
        return complete

    def due(self) -> list[Batch]:
        """Batches whose oldest event has waited `linger_ms`."""
        now = self._clock_ms()
        slots = []
        for slot, batch in self._open.items():
            if now - batch.opened_ms < self.linger_ms:
                break  # the rest are younger
            slots.append(slot)
        return [self._open.pop(slot) for slot in slots]

    def next_due_in_ms(self) -> int | None:
        """Milliseconds until the oldest open batch is due (0: now), None when all are empty."""
        if not self._open:
            return None
        oldest = next(iter(self._open.values()))
        return max(0, oldest.opened_ms + self.linger_ms - self._clock_ms())

    def drain(self) -> list[Batch]:
        """Every open batch, for flush and close."""
        batches = list(self._open.values())
        self._open.clear()
        return batches
