"""produce() with a stand-in for kafka-python's KafkaProducer (no broker needed)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kafka  # type: ignore[import-untyped]
import orjson
import pytest

import simulator.producer as producer_module
from simulator import SimulatorError, produce
from tests.simulator.reference import small_scenario


class FakeFuture:
    def add_errback(self, callback: Any) -> FakeFuture:
        self.callback = callback
        return self

    def get(self) -> SimpleNamespace:
        """kafka-python's RecordMetadata once flushed: where the message was written."""
        return SimpleNamespace(partition=0)


class FakeProducer:
    last: FakeProducer

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.flushed = self.closed = False
        FakeProducer.last = self

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> FakeFuture:
        self.sent.append((topic, key, value))
        return FakeFuture()

    def flush(self) -> None:
        self.flushed = True

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeProducer]:
    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    return FakeProducer


def test_produces_every_event_as_json_arrays(fake: type[FakeProducer]) -> None:
    scenario = small_scenario()
    report = produce(scenario, "127.0.0.1:1,127.0.0.1:2", topic_prefix="test.")
    producer = fake.last
    assert producer.flushed and producer.closed
    assert producer.options["acks"] == "all"
    assert producer.options["bootstrap_servers"] == ["127.0.0.1:1", "127.0.0.1:2"]
    assert producer.options["compression_type"] in ("lz4", "gzip")
    events = [event for _topic, _key, value in producer.sent for event in orjson.loads(value)]
    assert events == [event for _t, _k, event in orjson.loads(orjson.dumps(_ordered(producer)))]
    assert len(events) == len(scenario.deliveries) == report.events
    assert {topic for topic, _k, _v in producer.sent} == {
        "test.clicks",
        "test.carts",
        "test.orders",
        "test.aftersales",
        "test.inventory",
    }
    assert report.messages == len(producer.sent)
    assert {key for _t, key, _v in producer.sent} == {b"store-000", b"store-001"}


def _ordered(producer: FakeProducer) -> list[Any]:
    return [
        [topic, None, event] for topic, _k, value in producer.sent for event in orjson.loads(value)
    ]


def test_speed_paces_event_time_against_the_wall_clock(
    fake: type[FakeProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [0.0]
    monkeypatch.setattr(producer_module.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(producer_module.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    scenario = small_scenario()
    produce(scenario, "127.0.0.1:1", speed=60.0)
    span_s = (max(scenario.delivered_at_ms) - min(scenario.delivered_at_ms)) / 1000
    assert clock[0] == pytest.approx(span_s / 60.0, abs=0.1)


def test_bad_speed_and_progress(fake: type[FakeProducer]) -> None:
    with pytest.raises(SimulatorError):
        produce(small_scenario(), "127.0.0.1:1", speed=0)
    seen: list[tuple[int, int]] = []
    produce(
        small_scenario(), "127.0.0.1:1", progress=lambda done, total: seen.append((done, total))
    )
    assert seen[-1][0] == seen[-1][1] == len(small_scenario().deliveries)
