from __future__ import annotations

import orjson
import pytest

from streams.contract.decoding import MAX_BATCH_EVENTS, MessageDecoder, RejectReason
from streams.contract.events import TopicKind
from tests.support.events import make_event

NOW_MS = 1_794_326_400_000


@pytest.fixture
def decoder() -> MessageDecoder:
    return MessageDecoder(TopicKind.CLICKS, clock_ms=lambda: NOW_MS)


def test_single_event(decoder: MessageDecoder) -> None:
    decoded = decoder.decode(orjson.dumps(make_event("click", ts=NOW_MS)))
    assert [e.type for e in decoded.events] == ["click"]
    assert decoded.rejections == []


def test_batch_keeps_good_events_and_rejects_bad_ones_alone(decoder: MessageDecoder) -> None:
    bad = make_event("click", ts=NOW_MS, channel="APP")
    batch = [make_event("click", ts=NOW_MS), bad, make_event("order_paid"), 7]
    decoded = decoder.decode(orjson.dumps(batch))
    assert len(decoded.events) == 1
    reasons = [(r.reason, r.index) for r in decoded.rejections]
    assert reasons == [
        (RejectReason.INVALID_FIELD, 1),
        (RejectReason.UNKNOWN_TYPE, 2),
        (RejectReason.NOT_AN_EVENT, 3),
    ]
    assert orjson.loads(decoded.rejections[0].value) == bad
    assert "channel" in decoded.rejections[0].detail


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", RejectReason.INVALID_JSON),
        (b"", RejectReason.INVALID_JSON),
        (None, RejectReason.INVALID_JSON),
        (b'"a string"', RejectReason.NOT_AN_EVENT),
        (b"[]", RejectReason.EMPTY_BATCH),
        (b"[" + b",".join([b"{}"] * (MAX_BATCH_EVENTS + 1)) + b"]", RejectReason.BATCH_TOO_LARGE),
        (b'"' + b"x" * (1024 * 1024) + b'"', RejectReason.BATCH_TOO_LARGE),
    ],
)
def test_whole_message_faults_keep_original_bytes(
    decoder: MessageDecoder, value: bytes | None, reason: RejectReason
) -> None:
    decoded = decoder.decode(value)
    assert decoded.events == []
    [rejection] = decoded.rejections
    assert rejection.reason == reason
    assert rejection.value == (value or b"")
    assert rejection.index is None


def test_single_invalid_event_keeps_original_bytes(decoder: MessageDecoder) -> None:
    raw = b'{"type": "click",   "event_id": "x"}'
    [rejection] = decoder.decode(raw).rejections
    assert rejection.value == raw
    assert rejection.reason == RejectReason.INVALID_FIELD


def test_future_timestamp_reason(decoder: MessageDecoder) -> None:
    decoded = decoder.decode(orjson.dumps(make_event("click", ts=NOW_MS + 10 * 60_000)))
    assert decoded.rejections[0].reason == RejectReason.FUTURE_TIMESTAMP


def test_batch_at_the_limit_is_accepted(decoder: MessageDecoder) -> None:
    tiny = {"type": "click", "ts": 0, "store_id": "s", "channel": "a", "user_id": "u"}
    batch = [{**tiny, "event_id": str(i), "sku": "k"} for i in range(MAX_BATCH_EVENTS)]
    value = orjson.dumps(batch)
    assert len(value) <= 1024 * 1024
    assert len(decoder.decode(value).events) == MAX_BATCH_EVENTS
