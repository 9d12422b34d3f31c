"""Kafka messages from deliveries: batches of events of one topic (and key).

`grouping` says what one batch is (Grouping): a JSON array of one topic and key (a store's
batch, the default), a JSON array of one topic whatever the keys (keyed by its first
event's key), or a producer's batch of one topic: up to `max_events` single-event messages,
each with its own key, sent together.
A batch holds consecutive deliveries of its slot. With `linger_ms` > 0 (a client's linger)
a slot's open batch takes every delivery of the slot until the stream has moved
`linger_ms` past its first one (on the delivery-time scale: the event time at which things
are delivered, so "1 s of event time past its first event" is `linger_ms=1000`), even when
other slots come between; per slot the order is kept, and no event moves more than
`linger_ms` against the others. The default, min(1 s, grace/4), keeps the late set of the
ground truth intact (out-of-order slack grace/2 + linger < grace). `linger_ms=0` groups
strictly consecutive runs only.
Limits (docs/contract.md): at most 10,000 events and 1 MiB per message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import orjson

from simulator.errors import SimulatorError
from simulator.scenario import Scenario

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_EVENTS", "Batch", "Grouping", "batches"]

MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1024 * 1024
# default bytes per message: under 1 MiB so that key and record overhead still fit a
# broker's default message.max.bytes (1 MiB + 12) even without compression
_DEFAULT_MAX_BYTES = 1_000_000
_DEFAULT_LINGER_MS = 1000


class Grouping(enum.StrEnum):
    """What one batch of `batches()` is."""

    TOPIC_KEY = "topic_key"  # a JSON array message per topic and key, with that key
    TOPIC = "topic"  # a JSON array message per topic, any keys, keyed by its first event's
    RECORDS = "records"  # per topic, single-event messages with their own keys, sent together


@dataclass(frozen=True)
class Batch:
    """One Kafka message: `value` is the JSON array of `events` (RECORDS: the one event)."""

    topic: str
    key: bytes | None
    events: list[dict[str, Any]]
    value: bytes
    first_at_ms: int  # delivery time of the first event (for pacing)


class _Open:
    __slots__ = ("events", "first_at_ms", "keys", "parts", "size")

    def __init__(self, first_at_ms: int) -> None:
        self.events: list[dict[str, Any]] = []
        self.parts: list[bytes] = []
        self.keys: list[bytes | None] = []
        self.size = 1  # "[" and "]" with n-1 commas: 1 + sum(len(part) + 1)
        self.first_at_ms = first_at_ms


def batches(
    scenario: Scenario,
    max_events: int = 500,
    max_bytes: int = _DEFAULT_MAX_BYTES,
    linger_ms: int | None = None,
    grouping: Grouping = Grouping.TOPIC_KEY,
) -> list[Batch]:
    """Group the deliveries into messages, in the order to produce them.

    `max_events` is per batch (for RECORDS, messages sent together); `max_bytes` per message.
    """
    if linger_ms is None:
        linger_ms = min(_DEFAULT_LINGER_MS, scenario.config.grace_ms // 4)
    if not 1 <= max_events <= MAX_BATCH_EVENTS:
        raise SimulatorError(f"max_events must be in 1..{MAX_BATCH_EVENTS}")
    if not 2 < max_bytes <= MAX_BATCH_BYTES:
        raise SimulatorError(f"max_bytes must be in 3..{MAX_BATCH_BYTES}")
    if linger_ms < 0:
        raise SimulatorError("linger_ms must be >= 0")
    out: list[Batch] = []
    opened: dict[tuple[str, bytes | None], _Open] = {}  # oldest first
    dumps = orjson.dumps
    per_key = grouping is Grouping.TOPIC_KEY
    records = grouping is Grouping.RECORDS

    def flush(slot: tuple[str, bytes | None]) -> None:
        batch = opened.pop(slot)
        if records:
            for key, event, part in zip(batch.keys, batch.events, batch.parts, strict=True):
                out.append(Batch(slot[0], key, [event], part, batch.first_at_ms))
            return
        value = b"[" + b",".join(batch.parts) + b"]"
        out.append(Batch(slot[0], batch.keys[0], batch.events, value, batch.first_at_ms))

    for (topic, key, event), at in zip(scenario.deliveries, scenario.delivered_at_ms, strict=True):
        slot = (topic, key if per_key else None)
        if linger_ms:
            while opened:
                oldest = next(iter(opened))
                if opened[oldest].first_at_ms + linger_ms > at:
                    break
                flush(oldest)
        else:
            for other in [other for other in opened if other != slot]:
                flush(other)
        part = dumps(event)
        if len(part) + 2 > max_bytes:
            raise SimulatorError(f"event {event.get('event_id')} alone is over {max_bytes} bytes")
        current = opened.get(slot)
        if current is not None and (
            len(current.events) >= max_events
            or (not records and current.size + len(part) + 1 > max_bytes)
        ):
            flush(slot)
            current = None
        if current is None:
            current = opened[slot] = _Open(at)
        current.events.append(event)
        current.keys.append(key)
        current.parts.append(part)
        current.size += len(part) + 1
    for slot in list(opened):
        flush(slot)
    return out
