"""Events from keyword fields, dicts or models, validated by the worker's own rules.

The SDK validates with `streams.contract.decoding.MessageDecoder`, the code a worker runs on every
message, so an event the SDK accepts is one the pipeline accepts, and a refused event gets
the reason and detail a worker would have written in the dead-letter headers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sdk.errors import InvalidEventError
from streams.contract.decoding import MessageDecoder, RejectReason
from streams.contract.events import DEFAULT_MAX_FUTURE_MS, TOPIC_TYPES, EventBase, TopicKind
from streams.contract.routing import normalise

__all__ = ["EVENT_TYPES", "EventValidator", "kind_of"]

_KIND_OF_TYPE: dict[str, TopicKind] = {
    event_type: kind for kind, types in TOPIC_TYPES.items() for event_type in sorted(types)
}
EVENT_TYPES: tuple[str, ...] = tuple(_KIND_OF_TYPE)


def kind_of(event_type: object) -> TopicKind:
    """The input topic of an event `type`."""
    kind = _KIND_OF_TYPE.get(event_type) if isinstance(event_type, str) else None
    if kind is None:
        raise InvalidEventError(
            RejectReason.UNKNOWN_TYPE,
            f"type {event_type!r} is not one of {', '.join(EVENT_TYPES)}",
        )
    return kind


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class EventValidator:
    """Turns dicts, models or keyword fields into validated events of a known topic."""

    def __init__(
        self, max_future_ms: int = DEFAULT_MAX_FUTURE_MS, clock_ms: Callable[[], int] = _now_ms
    ) -> None:
        self._clock_ms = clock_ms
        self._decoders = {kind: MessageDecoder(kind, max_future_ms, clock_ms) for kind in TopicKind}

    def validate(
        self, event: EventBase | Mapping[str, Any], kind: TopicKind | None = None
    ) -> tuple[TopicKind, EventBase]:
        """Validate one event for `kind` (default: the topic of its `type`).

        Models are validated again: one made with `model_construct` or changed after
        creation must not slip through. Raises InvalidEventError.
        """
        obj = normalise(event) if isinstance(event, EventBase) else event
        if not isinstance(obj, Mapping):
            raise InvalidEventError(RejectReason.NOT_AN_EVENT, "an event is a JSON object")
        if kind is None:
            kind = kind_of(obj.get("type"))
        decoded = self._decoders[kind].decode_objects([dict(obj)])
        if decoded.rejections:
            rejection = decoded.rejections[0]
            raise InvalidEventError(rejection.reason, rejection.detail)
        return kind, decoded.events[0]

    def build(self, event_type: str, /, **fields: Any) -> tuple[TopicKind, EventBase]:
        """An event of `event_type` from keyword fields; `event_id` (uuid4) and `ts` (now,
        epoch ms) are filled in when missing or None, an aware `datetime` ts is accepted."""
        if fields.get("event_id") is None:
            fields["event_id"] = uuid.uuid4().hex
        ts = fields.get("ts")
        if ts is None:
            fields["ts"] = self._clock_ms()
        elif isinstance(ts, datetime):
            fields["ts"] = ts.isoformat()  # a naive datetime is refused like a naive string
        return self.validate({**fields, "type": event_type})
