"""Stage 1 logic without a broker: routing, dead letters, counting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from streams.contract.events import EventBase, TopicKind, event_adapter
from streams.contract.routing import encode_json, fields_of, normalise, partition_for, routing_key
from streams.ingest.ingestor import Ingestor, encode_chunks
from streams.runtime.metrics import Metrics
from streams.runtime.settings import load_settings
from tests.support.events import EVENT_TYPES, TOPIC_OF_TYPE, make_event


@dataclass
class FakeRecord:
    topic: str
    value: bytes | None
    key: bytes | None = b"store-1"
    partition: int = 3
    offset: int = 42


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_valid_events_are_counted_and_routed_by_content() -> None:
    metrics = Metrics()
    ingestor = Ingestor(load_settings(partitions=8))
    paid = make_event("order_paid", order_id="o-7")
    cancelled = make_event("order_cancelled", order_id="o-7")
    result = ingestor.process(
        [
            FakeRecord("shop.orders", orjson.dumps([paid, cancelled]), key=None),
            FakeRecord("shop.clicks", orjson.dumps(make_event("click")), key=b"random"),
        ]
    )
    order_partition = partition_for("o|store-1|o-7", 8)
    assert [e["type"] for e in result.routed[order_partition]][:2] == [
        "order_paid",
        "order_cancelled",
    ]
    assert sum(len(events) for events in result.routed.values()) == 3
    assert result.dead_letters == []
    result.counts.apply(metrics)
    assert sample(metrics, "salewatch_events_total", topic="shop.orders", type="order_paid") == 1
    assert sample(metrics, "salewatch_messages_total", topic="shop.orders") == 1


def test_routing_key_ignores_the_message_key_and_groups_orders_and_skus() -> None:
    events = [make_event(t) for t in ("order_created", "refund_requested", "return_received")]
    topics = ("orders", "aftersales", "aftersales")
    keys = {routing_key(normalise(_validated(e, t))) for e, t in zip(events, topics, strict=True)}
    assert keys == {"o|store-1|o1"}
    snapshot = _validated(make_event("stock_snapshot", sku="A"), "inventory")
    assert routing_key(normalise(snapshot)) == "s|store-1|A"
    click = _validated(make_event("click", event_id="e-9"), "clicks")
    assert routing_key(normalise(click)) == "e|store-1|e-9"


def test_rejections_become_dead_letters_with_contract_headers() -> None:
    metrics = Metrics()
    ingestor = Ingestor(load_settings())
    bad = make_event("click", channel="Not Valid")
    result = ingestor.process(
        [
            FakeRecord("shop.clicks", orjson.dumps([make_event("click"), bad])),
            FakeRecord("shop.carts", b"\xff\xfe", partition=1, offset=9),
        ]
    )
    first, second = result.dead_letters
    headers = dict(first.headers)
    assert headers["salewatch.error.reason"] == b"invalid_field"
    assert b"channel" in headers["salewatch.error.detail"]
    assert headers["salewatch.original.topic"] == b"shop.clicks"
    assert headers["salewatch.original.partition"] == b"3"
    assert headers["salewatch.original.offset"] == b"42"
    assert headers["salewatch.batch.index"] == b"1"
    assert first.key == b"store-1"
    assert orjson.loads(first.value) == bad
    assert second.value == b"\xff\xfe"
    assert dict(second.headers)["salewatch.error.reason"] == b"invalid_json"
    result.counts.apply(metrics)
    assert sample(metrics, "salewatch_deadletter_total", topic="shop.carts", reason="invalid_json")


def test_routed_payloads_are_split_below_the_message_limit() -> None:
    events = [{"event_id": str(i), "pad": "x" * 1000} for i in range(2000)]
    chunks = list(encode_chunks(events))
    assert len(chunks) > 1
    assert all(len(chunk) <= 900 * 1024 for chunk in chunks)
    assert [e for chunk in chunks for e in orjson.loads(chunk)] == events


def test_the_routed_form_encodes_to_the_normalised_json_of_every_type() -> None:
    for event_type in EVENT_TYPES:
        event = make_event(event_type, amount=12.1, ts="2026-11-11T00:00:00.5+08:00")
        model = _validated(event, TOPIC_OF_TYPE[event_type])
        routed = orjson.loads(encode_json([fields_of(model)]))
        assert routed == [normalise(model)], event_type


def _validated(event: dict[str, Any], topic: str) -> EventBase:
    return event_adapter(TopicKind(topic)).validate_python(event)  # type: ignore[no-any-return]
