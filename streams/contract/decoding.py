"""Turn one Kafka message value into validated events and rejections.

A value is one JSON event object or a JSON array of them (docs/contract.md §1). Whole-message
faults (not JSON, not an object or array, over the batch limits) reject the original bytes.
In a valid batch each event stands alone: good events go on, each bad one is rejected with
its own JSON and its index in the batch, so one typo does not hold up 9,999 orders.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from streams.contract.events import (
    DEFAULT_MAX_FUTURE_MS,
    TOPIC_TYPES,
    EventBase,
    TopicKind,
    event_adapter,
)

__all__ = ["DecodedMessage", "MessageDecoder", "RejectReason", "Rejection"]

MAX_BATCH_EVENTS = 10_000
MAX_MESSAGE_BYTES = 1024 * 1024


class RejectReason(enum.StrEnum):
    """Values of the `salewatch.error.reason` dead-letter header."""

    INVALID_JSON = "invalid_json"
    NOT_AN_EVENT = "not_an_event"
    EMPTY_BATCH = "empty_batch"
    BATCH_TOO_LARGE = "batch_too_large"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"
    FUTURE_TIMESTAMP = "future_timestamp"


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str
    value: bytes
    index: int | None = None  # position in the batch; None when the whole message is rejected


@dataclass(slots=True)
class DecodedMessage:
    events: list[EventBase] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class MessageDecoder:
    """Validates the messages of one input topic."""

    def __init__(
        self,
        kind: TopicKind,
        max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
        clock_ms: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        self.kind = kind
        self._adapter = event_adapter(kind)
        self._types = TOPIC_TYPES[kind]
        self._max_future_ms = max_future_ms
        self._clock_ms = clock_ms

    def decode(self, value: bytes | None) -> DecodedMessage:
        raw = value or b""
        if len(raw) > MAX_MESSAGE_BYTES:
            return _whole(RejectReason.BATCH_TOO_LARGE, f"{len(raw)} bytes > 1 MiB", raw)
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _whole(RejectReason.INVALID_JSON, str(exc), raw)
        if isinstance(parsed, dict):
            return self.decode_objects([parsed], raw_single=raw)
        if not isinstance(parsed, list):
            return _whole(RejectReason.NOT_AN_EVENT, "value is neither an object nor an array", raw)
        if not parsed:
            return _whole(RejectReason.EMPTY_BATCH, "the batch holds no event", raw)
        if len(parsed) > MAX_BATCH_EVENTS:
            return _whole(
                RejectReason.BATCH_TOO_LARGE, f"{len(parsed)} events > {MAX_BATCH_EVENTS}", raw
            )
        return self.decode_objects(parsed)

    def decode_objects(self, objects: list[Any], raw_single: bytes | None = None) -> DecodedMessage:
        """Validate parsed events one by one; `raw_single` is the original bytes of a lone event."""
        result = DecodedMessage()
        context = {"now_ms": self._clock_ms(), "max_future_ms": self._max_future_ms}
        validate = self._adapter.validate_python
        for index, obj in enumerate(objects):
            try:
                result.events.append(validate(obj, context=context))
            except ValidationError as exc:
                reason, detail = self._explain(obj, exc)
                original = raw_single if raw_single is not None else orjson.dumps(obj)
                batch_index = None if raw_single is not None else index
                result.rejections.append(Rejection(reason, detail, original, batch_index))
        return result

    def _explain(self, obj: Any, exc: ValidationError) -> tuple[RejectReason, str]:
        if not isinstance(obj, dict):
            return RejectReason.NOT_AN_EVENT, "batch element is not an object"
        event_type = obj.get("type")
        if event_type not in self._types:
            allowed = ", ".join(sorted(self._types))
            return RejectReason.UNKNOWN_TYPE, f"type {event_type!r} is not one of {allowed}"
        errors = exc.errors(include_url=False, include_input=False)
        detail = "; ".join(
            f"{'.'.join(str(part) for part in err['loc'][1:]) or 'event'}: {err['msg']}"
            for err in errors
        )
        if any("future_timestamp" in err["msg"] for err in errors):
            return RejectReason.FUTURE_TIMESTAMP, detail
        return RejectReason.INVALID_FIELD, detail


def _whole(reason: RejectReason, detail: str, raw: bytes) -> DecodedMessage:
    return DecodedMessage(rejections=[Rejection(reason, detail, raw)])
