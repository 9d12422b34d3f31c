"""Every field rule of docs/contract.md §2, valid and invalid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.contract.events import TOPIC_TYPES, TopicKind, event_adapter
from tests.support.events import EVENT_TYPES, TOPIC_OF_TYPE, make_event

NOW_MS = 1_794_326_400_000  # 2026-11-11T00:00:00+08:00


def validate(event: dict[str, Any], now_ms: int = NOW_MS) -> Any:
    kind = TopicKind(TOPIC_OF_TYPE[event["type"]])
    return event_adapter(kind).validate_python(event, context={"now_ms": now_ms})


def test_topics_accept_exactly_the_contract_types() -> None:
    assert {t for types in TOPIC_TYPES.values() for t in types} == set(EVENT_TYPES)
    assert TOPIC_TYPES[TopicKind.ORDERS] == {
        "order_created", "order_paid", "payment_failed", "order_cancelled",
    }  # fmt: skip


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_type_validates(event_type: str) -> None:
    event = validate(make_event(event_type, ts=NOW_MS))
    assert event.type == event_type
    assert event.ts == NOW_MS


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_unknown_fields_are_ignored(event_type: str) -> None:
    event = validate(make_event(event_type, ts=NOW_MS, brand_new_field={"x": 1}))
    assert not hasattr(event, "brand_new_field")


@pytest.mark.parametrize(
    ("ts", "expected_ms"),
    [
        ("2026-11-11T00:00:03.120+08:00", NOW_MS + 3_120),
        ("2026-11-10T16:00:00Z", NOW_MS),
        (NOW_MS - 5, NOW_MS - 5),
    ],
)
def test_ts_iso_or_epoch_ms(ts: Any, expected_ms: int) -> None:
    assert validate(make_event("click", ts=ts)).ts == expected_ms


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)))
def test_iso_and_epoch_agree(moment: datetime) -> None:
    aware = moment.replace(tzinfo=UTC)
    epoch_ms = (aware - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    shifted = aware.astimezone(timezone(timedelta(hours=8)))
    assert validate(make_event("click", ts=shifted.isoformat()), now_ms=2**62).ts == epoch_ms


@pytest.mark.parametrize(
    "ts", ["2026-11-11T00:00:00", "yesterday", 1.5e12, True, None, -1, [NOW_MS]]
)
def test_bad_ts_rejected(ts: Any) -> None:
    with pytest.raises(ValidationError):
        validate(make_event("click", ts=ts))


def test_future_ts_rejected_past_five_minutes() -> None:
    validate(make_event("click", ts=NOW_MS + 5 * 60_000))
    with pytest.raises(ValidationError, match="future_timestamp"):
        validate(make_event("click", ts=NOW_MS + 5 * 60_000 + 1))


INVALID: list[tuple[str, dict[str, Any]]] = [
    ("click", {"event_id": ""}),
    ("click", {"event_id": "x" * 65}),
    ("click", {"store_id": "bad store"}),
    ("click", {"store_id": "s" * 65}),
    ("click", {"channel": "App"}),
    ("click", {"channel": "c" * 33}),
    ("click", {"user_id": None}),
    ("click", {"user_id": "u" * 129}),
    ("click", {"session_id": "s" * 129}),
    ("click", {"sku": ""}),
    ("impression", {"category": "c" * 65}),
    ("impression", {"source": "s" * 33}),
    ("cart_add", {"qty": 0}),
    ("cart_add", {"qty": 10_001}),
    ("cart_add", {"qty": "2"}),
    ("cart_add", {"unit_price": -1}),
    ("cart_remove", {"user_id": None}),
    ("order_created", {"lines": []}),
    ("order_created", {"lines": [{"sku": "a", "qty": 1, "unit_price": 1}] * 501}),
    ("order_created", {"lines": [{"sku": "a", "qty": 1}]}),
    ("order_created", {"amount": "1e10"}),
    ("order_created", {"amount": "NaN"}),
    ("order_created", {"amount": "lots"}),
    ("order_created", {"currency": "yuan"}),
    ("order_paid", {"order_id": ""}),
    ("payment_failed", {"reason": "r" * 129}),
    ("refund_requested", {"amount": -5}),
    ("refund_requested", {"order_id": None}),
    ("return_received", {"restock": "yes"}),
    ("return_received", {"qty": 0}),
    ("stock_snapshot", {"available": -1}),
    ("restock", {"qty": 1_000_001}),
    ("stock_adjust", {"delta": 0}),
    ("stock_adjust", {"delta": -1_000_001}),
]


@pytest.mark.parametrize(("event_type", "override"), INVALID)
def test_field_rules(event_type: str, override: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        validate(make_event(event_type, ts=NOW_MS, **override))


def test_money_uses_decimals_and_currency_defaults() -> None:
    event = validate(make_event("order_paid", ts=NOW_MS, amount=0.1))
    assert str(event.amount) == "0.1"
    assert event.currency == "CNY"


def test_type_of_another_topic_is_rejected() -> None:
    with pytest.raises(ValidationError):
        event_adapter(TopicKind.CLICKS).validate_python(make_event("order_paid"))
