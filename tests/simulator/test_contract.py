"""Every generated event obeys docs/contract.md (own checks, then the pydantic models)."""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from simulator import Scenario, batches
from tests.simulator.reference import incident_scenario, money, small_scenario, ts_ms

TOPIC_TYPES = {
    "clicks": {"impression", "click"},
    "carts": {"cart_add", "cart_remove"},
    "orders": {"order_created", "order_paid", "payment_failed", "order_cancelled"},
    "aftersales": {"refund_requested", "refund_completed", "return_received", "complaint"},
    "inventory": {"stock_snapshot", "restock", "stock_adjust"},
}
STORE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
CHANNEL_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00$")


def scenarios() -> list[Scenario]:
    return [small_scenario(), incident_scenario()]


def check_id(value: Any, limit: int = 64) -> None:
    assert isinstance(value, str) and 1 <= len(value) <= limit, value


def check_money(value: Any) -> Decimal:
    assert isinstance(value, str | float | int) and not isinstance(value, bool), value
    amount = money(value)
    assert 0 <= amount <= Decimal("1e9"), value
    assert amount == amount.quantize(Decimal("0.01")), f"more than 2 decimals: {value!r}"
    return amount


def check_qty(value: Any, high: int = 10_000) -> None:
    assert type(value) is int and 1 <= value <= high, value


def check_event(topic: str, event: dict[str, Any]) -> None:
    kind = event["type"]
    assert kind in TOPIC_TYPES[topic], (topic, kind)
    check_id(event["event_id"])
    ts = event["ts"]
    if isinstance(ts, str):
        assert ISO_RE.match(ts), ts
    else:
        assert type(ts) is int and ts > 0
    assert STORE_RE.match(event["store_id"])
    assert CHANNEL_RE.match(event["channel"])
    if topic in ("clicks", "carts", "orders"):
        assert isinstance(event["user_id"], str) and len(event["user_id"]) <= 128
    for optional in ("user_id", "session_id"):
        if optional in event:
            assert isinstance(event[optional], str) and len(event[optional]) <= 128
    if topic == "clicks":
        check_id(event["sku"])
        assert len(event.get("category", "")) <= 64 and len(event.get("source", "")) <= 32
    elif topic == "carts":
        check_id(event["sku"])
        check_qty(event["qty"])
        if "unit_price" in event:
            check_money(event["unit_price"])
    elif topic == "orders":
        check_id(event["order_id"])
        lines = event["lines"]
        assert 1 <= len(lines) <= 5  # the contract allows 500; the simulator makes 1-5
        total = Decimal(0)
        for line in lines:
            check_id(line["sku"])
            check_qty(line["qty"])
            total += check_money(line["unit_price"]) * line["qty"]
        amount = check_money(event["amount"])
        assert 0 < amount < total, "amount is payable after a discount"
        assert event.get("currency", "CNY") == "CNY"
        assert len({line["sku"] for line in lines}) == len(lines)
        if kind == "payment_failed":
            assert len(event.get("reason", "")) <= 128
    elif topic == "aftersales":
        if kind in ("refund_requested", "refund_completed"):
            check_id(event["order_id"])
            check_money(event["amount"])
            if "sku" in event:
                check_id(event["sku"])
                check_qty(event["qty"])
        elif kind == "return_received":
            check_id(event["order_id"])
            check_id(event["sku"])
            check_qty(event["qty"])
            assert type(event["restock"]) is bool
        else:
            assert len(event.get("reason", "")) <= 128
    else:
        check_id(event["sku"])
        if kind == "stock_snapshot":
            assert type(event["available"]) is int and event["available"] >= 0
        elif kind == "restock":
            check_qty(event["qty"], 1_000_000)
        else:
            delta = event["delta"]
            assert type(delta) is int and delta != 0 and abs(delta) <= 1_000_000


@pytest.mark.parametrize("index", [0, 1])
def test_every_event_obeys_the_contract(index: int) -> None:
    scenario = scenarios()[index]
    for topic, key, event in scenario.deliveries:
        check_event(topic, event)
        assert key is None or isinstance(key, bytes)


@pytest.mark.parametrize("index", [0, 1])
def test_event_ids_are_unique_and_duplicates_are_exact(index: int) -> None:
    scenario = scenarios()[index]
    first: dict[str, dict[str, Any]] = {}
    copies = 0
    for _topic, _key, event in scenario.deliveries:
        seen = first.setdefault(event["event_id"], event)
        if seen is not event:
            copies += 1
            assert seen == event, "a re-send is the same event"
    assert copies == scenario.truth.duplicates > 0
    assert copies / len(scenario.deliveries) == pytest.approx(
        scenario.config.duplicate_rate, rel=0.35
    )


def test_both_timestamp_forms_and_both_money_forms_are_used() -> None:
    scenario = incident_scenario()
    ts_kinds = Counter(type(event["ts"]).__name__ for _t, _k, event in scenario.deliveries)
    assert ts_kinds["str"] > 0.2 * len(scenario) and ts_kinds["int"] > 0.5 * len(scenario)
    amounts = Counter(type(event["amount"]).__name__ for event in scenario.events("orders"))
    assert amounts["str"] > 100 and amounts["float"] > 100
    iso = next(e["ts"] for e in scenario.events() if isinstance(e["ts"], str))
    assert iso.endswith("+08:00")


def test_event_times_are_inside_the_scenario() -> None:
    scenario = small_scenario()
    config = scenario.config
    times = [ts_ms(event["ts"]) for event in scenario.events()]
    assert min(times) == config.start_ms  # the opening stock snapshots
    assert max(times) < config.end_ms


def test_every_store_and_sku_opens_with_a_snapshot() -> None:
    scenario = small_scenario()
    config = scenario.config
    opening = {
        (e["store_id"], e["sku"])
        for e in scenario.events("inventory")
        if e["type"] == "stock_snapshot" and ts_ms(e["ts"]) == config.start_ms
    }
    assert len(opening) == config.stores * config.skus_per_store


@pytest.mark.parametrize("index", [0, 1])
def test_events_validate_with_the_pipeline_models(index: int) -> None:
    events = pytest.importorskip("streams.contract.events")
    scenario = scenarios()[index]
    adapters = {kind.value: events.event_adapter(kind) for kind in events.TopicKind}
    for topic, _key, event in scenario.deliveries:
        model = adapters[topic].validate_python(event)
        assert model.ts == ts_ms(event["ts"])
        if "amount" in event:
            assert model.amount == money(event["amount"])


def test_batched_messages_decode_without_rejections() -> None:
    decoding = pytest.importorskip("streams.contract.decoding")
    events = pytest.importorskip("streams.contract.events")
    scenario = incident_scenario()
    decoders = {
        kind.value: decoding.MessageDecoder(kind, clock_ms=lambda: scenario.config.end_ms)
        for kind in events.TopicKind
    }
    decoded = 0
    for message in batches(scenario):
        result = decoders[message.topic].decode(message.value)
        assert not result.rejections, result.rejections[:1]
        decoded += len(result.events)
    assert decoded == len(scenario.deliveries)
