"""Messages from deliveries: every event once, per-key order kept, contract limits held."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from simulator import Arrival, Grouping, Scenario, SimulatorError, batches, starting_ago
from simulator.batching import MAX_BATCH_BYTES, MAX_BATCH_EVENTS
from simulator.topics import TOPIC_OF_TYPE, TOPICS
from tests.simulator.reference import small_scenario


@pytest.fixture(params=["store", "random", "none"], scope="module")
def scenario(request: pytest.FixtureRequest) -> Scenario:
    return small_scenario(1, request.param)


def per_slot(items: Sequence[tuple[str, bytes | None, dict[str, Any]]]) -> dict[Any, list[str]]:
    order: dict[Any, list[str]] = defaultdict(list)
    for topic, key, event in items:
        order[(topic, key)].append(event["event_id"])
    return order


@pytest.mark.parametrize(("max_events", "linger_ms"), [(500, 1000), (50, 1000), (500, 0)])
def test_every_delivery_once_in_per_key_order(
    scenario: Scenario, max_events: int, linger_ms: int
) -> None:
    messages = batches(scenario, max_events=max_events, linger_ms=linger_ms)
    flat = [(m.topic, m.key, e) for m in messages for e in m.events]
    assert len(flat) == len(scenario.deliveries)
    assert per_slot(flat) == per_slot(scenario.deliveries)
    for message in messages:
        assert 1 <= len(message.events) <= max_events
        assert orjson.loads(message.value) == message.events
        assert all(TOPIC_OF_TYPE[e["type"]] == message.topic for e in message.events)


def test_no_linger_keeps_the_exact_delivery_order(scenario: Scenario) -> None:
    messages = batches(scenario, linger_ms=0)
    flat = [e["event_id"] for m in messages for e in m.events]
    assert flat == [e["event_id"] for _t, _k, e in scenario.deliveries]
    for first, second in itertools.pairwise(messages):
        assert (first.topic, first.key) != (second.topic, second.key) or len(first.events) == 500


def test_linger_bounds_how_far_an_event_moves(scenario: Scenario) -> None:
    # by object: a duplicate copy is its own dict, delivered at its own time
    at = {
        id(e): ms
        for (_t, _k, e), ms in zip(scenario.deliveries, scenario.delivered_at_ms, strict=True)
    }
    latest = 0
    for message in batches(scenario, linger_ms=1000):
        for event in message.events:
            arrival = at[id(event)]
            assert arrival >= latest - 1000
            latest = max(latest, arrival)


def test_batches_group_well_with_store_keys() -> None:
    messages = batches(small_scenario(1, "store"))
    events = sum(len(m.events) for m in messages)
    assert events / len(messages) > 20


def test_byte_limit_splits_messages(scenario: Scenario) -> None:
    messages = batches(scenario, max_events=MAX_BATCH_EVENTS, max_bytes=20_000)
    assert all(len(m.value) <= 20_000 for m in messages)
    assert sum(len(m.events) for m in messages) == len(scenario.deliveries)
    default = batches(scenario, max_events=MAX_BATCH_EVENTS, linger_ms=60_000)
    assert all(len(m.value) <= MAX_BATCH_BYTES for m in default)
    assert max(len(m.events) for m in default) <= MAX_BATCH_EVENTS


@pytest.mark.parametrize(
    "options",
    [{"max_events": 0}, {"max_events": 10_001}, {"max_bytes": 2_000_000}, {"linger_ms": -1}],
)
def test_limits_are_checked(options: dict[str, Any]) -> None:
    with pytest.raises(SimulatorError):
        batches(small_scenario(), **options)


def test_an_event_over_the_byte_limit_is_refused() -> None:
    with pytest.raises(SimulatorError, match="alone is over"):
        batches(small_scenario(), max_bytes=100)


def test_topic_grouping_mixes_keys_in_one_message_per_topic() -> None:
    scenario = small_scenario(3, "user")
    messages = batches(scenario, max_events=200, linger_ms=1000, grouping=Grouping.TOPIC)
    assert sum(len(m.events) for m in messages) == len(scenario.deliveries)
    per_topic = {
        topic: [e["event_id"] for t, _k, e in scenario.deliveries if t == topic] for topic in TOPICS
    }
    for topic, ids in per_topic.items():  # one slot per topic: its order is the delivery order
        assert [e["event_id"] for m in messages if m.topic == topic for e in m.events] == ids
    assert max(len(m.events) for m in messages) == 200
    assert any(len({e.get("user_id") for e in m.events}) > 1 for m in messages)
    for message in messages:
        assert orjson.loads(message.value) == message.events
        first = message.events[0]
        assert message.key == (first.get("user_id") or first["store_id"]).encode()


def test_records_grouping_sends_each_event_with_its_own_key() -> None:
    scenario = small_scenario(3, "user")
    messages = batches(scenario, max_events=200, linger_ms=1000, grouping=Grouping.RECORDS)
    grouped = batches(scenario, max_events=200, linger_ms=1000, grouping=Grouping.TOPIC)
    assert [m.events[0] for m in messages] == [e for m in grouped for e in m.events]
    assert per_slot([(m.topic, m.key, m.events[0]) for m in messages]) == per_slot(
        scenario.deliveries
    )
    assert all(orjson.loads(m.value) == m.events[0] for m in messages)


def test_arrival_lags_one_topic_and_keeps_every_topic_in_order() -> None:
    scenario = small_scenario(1, "store")
    plain = Arrival(max_events=100, linger_ms=500).messages(scenario)
    lagged = Arrival(max_events=100, linger_ms=500, lag_topic="clicks", lag_ms=5_000)
    messages = lagged.messages(scenario)
    assert sorted(map(id, (e for m in messages for e in m.events))) == sorted(
        map(id, (e for m in plain for e in m.events))
    )
    for topic in TOPICS:
        assert [m.events for m in messages if m.topic == topic] == [
            m.events for m in plain if m.topic == topic
        ]
    clicks_at = [m.first_at_ms for m in messages if m.topic == "clicks"]
    assert clicks_at == [m.first_at_ms + 5_000 for m in plain if m.topic == "clicks"]
    assert [m.topic for m in messages] != [m.topic for m in plain]


def test_starting_ago_places_the_scenario_in_the_past() -> None:
    config = starting_ago(small_scenario().config, 600, now_ms=1_800_000_000_123)
    assert config.start_ms == 1_800_000_000_000 - 600_000
    assert config.end_ms <= 1_800_000_000_000
