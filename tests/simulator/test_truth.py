"""The ground truth equals an independent recomputation from the delivery list alone."""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from simulator import GroundTruth, Grouping, Scenario, batches
from simulator.accounting import account_as_sent
from simulator.truth import OUTCOMES
from tests.simulator.reference import (
    incident_scenario,
    recompute_scenario,
    retry_scenario,
    short_window_scenario,
    small_scenario,
    stock_changes,
    ts_ms,
)

CASES: dict[str, Callable[[], Scenario]] = {
    "store keys": lambda: small_scenario(1, "store"),
    "random keys": lambda: small_scenario(2, "random"),
    "user keys": lambda: small_scenario(3, "user"),
    "no keys, incidents": lambda: incident_scenario("none"),
    "10 s windows, 2 s grace": short_window_scenario,
    "order retries, late copies": retry_scenario,
}


@pytest.fixture(params=list(CASES), scope="module")
def scenario(request: pytest.FixtureRequest) -> Scenario:
    return CASES[request.param]()


def test_windows_equal_the_reference(scenario: Scenario) -> None:
    truth = scenario.truth
    ref = recompute_scenario(scenario)
    assert set(truth.windows) == set(ref.windows)
    for key, window in truth.windows.items():
        expected = ref.windows[key]
        assert window.counts == expected.counts, key
        assert window.users == expected.users, key
        assert window.gmv == expected.gmv, key
        assert window.paid_orders == expected.paid_orders, key
        assert window.payment_failed == expected.payment_failed, key
        assert window.refund_requested == expected.refund_requested, key
        assert (window.refund_amount, window.returns, window.complaints) == (
            expected.refund_amount, expected.returns, expected.complaints,
        ), key  # fmt: skip
        assert (window.by_source, window.by_category) == (
            expected.by_source, expected.by_category,
        ), key  # fmt: skip
        assert (window.new_buyers, window.returning_buyers) == (
            expected.new_buyers, expected.returning_buyers,
        ), key  # fmt: skip
    windows = truth.windows.values()
    assert any(w.returning_buyers for w in windows) and any(w.new_buyers for w in windows)
    assert any(w.by_source for w in windows) and any(w.refund_amount for w in windows)


def test_late_and_duplicates_equal_the_reference(scenario: Scenario) -> None:
    truth = scenario.truth
    ref = recompute_scenario(scenario)
    assert truth.late_event_ids == ref.late
    assert truth.duplicates == ref.duplicates
    assert truth.late_event_ids and truth.duplicates
    assert sum(truth.late_by_topic.values()) == len(truth.late_event_ids)
    assert truth.late_by_topic["inventory"] == 0
    assert not truth.notes


def test_outcomes_equal_the_reference(scenario: Scenario) -> None:
    truth = scenario.truth
    nonzero = {
        topic: {outcome: n for outcome, n in outcomes.items() if n}
        for topic, outcomes in truth.outcomes_by_topic.items()
    }
    assert nonzero == recompute_scenario(scenario).outcomes
    delivered = scenario.deliveries_by_topic()
    for topic, outcomes in truth.outcomes_by_topic.items():
        assert set(outcomes) == set(OUTCOMES)
        assert sum(outcomes.values()) == delivered.get(topic, 0), topic
        assert outcomes["late"] == truth.late_by_topic[topic]
        assert outcomes["duplicate"] == truth.duplicates_by_topic[topic]
    assert truth.outcomes_by_topic["inventory"]["counted"] == 0


def test_inventory_equals_the_event_time_reference(scenario: Scenario) -> None:
    truth = scenario.truth
    ref = recompute_scenario(scenario)
    assert truth.inventory == ref.inventory
    config = scenario.config
    assert len(truth.inventory) == config.stores * config.skus_per_store


def test_periodic_snapshots_carry_the_true_stock(scenario: Scenario) -> None:
    unique = list({e["event_id"]: e for e in scenario.events()}.values())
    snapshots = [e for e in unique if e["type"] == "stock_snapshot"]
    opening = {
        (e["store_id"], e["sku"]): e["available"]
        for e in snapshots
        if ts_ms(e["ts"]) == scenario.config.start_ms
    }
    changes = stock_changes(unique)
    periodic = [e for e in snapshots if ts_ms(e["ts"]) > scenario.config.start_ms]
    assert periodic
    for snapshot in periodic:
        key = (snapshot["store_id"], snapshot["sku"])
        at = ts_ms(snapshot["ts"])
        true_stock = opening[key] + sum(d for ts, d in changes.get(key, []) if ts <= at)
        assert snapshot["available"] == true_stock, key
        # no stock change ties with a snapshot: the event-time definition is unambiguous
        assert all(ts != at for ts, _d in changes.get(key, []))


def test_last_sales_are_each_pairs_latest_order(scenario: Scenario) -> None:
    earliest: dict[str, tuple[int, dict[str, Any]]] = {}  # the order's hold: its first created
    for _topic, _key, event in scenario.deliveries:
        if event["type"] == "order_created":
            ts = ts_ms(event["ts"])
            if event["order_id"] not in earliest or ts < earliest[event["order_id"]][0]:
                earliest[event["order_id"]] = (ts, event)
    expected: dict[tuple[str, str], int] = {}
    for ts, event in earliest.values():
        for line in event["lines"]:
            pair = (event["store_id"], line["sku"])
            expected[pair] = max(expected.get(pair, ts), ts)
    truth = scenario.truth
    assert truth.last_sale_ms == expected
    quiet_ms = 60_000
    slow = truth.slow_moving(truth.end_ms, quiet_ms)
    assert slow and slow != set(truth.inventory)
    assert all(expected.get(pair, truth.start_ms) + quiet_ms <= truth.end_ms for pair in slow)


def test_json_round_trip(scenario: Scenario) -> None:
    truth = scenario.truth
    again = GroundTruth.from_json(truth.to_json())
    assert again == truth
    assert again.to_json() == truth.to_json()


def test_out_of_order_deliveries_stay_within_half_the_grace(scenario: Scenario) -> None:
    grace = scenario.config.grace_ms
    late = scenario.truth.late_event_ids
    shuffled = 0
    highest = 0
    seen: set[str] = set()
    for (_t, _k, event), at in zip(scenario.deliveries, scenario.delivered_at_ms, strict=True):
        ts = ts_ms(event["ts"])
        first = event["event_id"] not in seen
        seen.add(event["event_id"])
        if event["event_id"] in late or (not first and at - ts > 3 * grace):  # late copies
            assert at - ts > 3 * grace
            continue
        assert 0 <= at - ts < grace / 2
        shuffled += ts < highest
        highest = max(highest, ts)
    assert shuffled > 0.01 * len(scenario.deliveries)


def routing_key(event: dict[str, Any]) -> str:
    """docs/architecture.md: the stage-2 key, from the event's content."""
    if "order_id" in event:
        return f"o|{event['store_id']}|{event['order_id']}"
    if event["type"] in ("stock_snapshot", "restock", "stock_adjust"):
        return f"s|{event['store_id']}|{event['sku']}"
    return f"e|{event['store_id']}|{event['event_id']}"


def partitioned_late(events: list[dict[str, Any]], partitions: int, truth: GroundTruth) -> set[str]:
    """The late rule applied per stage-2 partition's own stream time."""
    stream: dict[int, int] = defaultdict(lambda: -1)
    seen: set[str] = set()
    late = set()
    for event in events:
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        part = zlib.crc32(routing_key(event).encode()) % partitions
        ts = ts_ms(event["ts"])
        start = ts - ts % truth.window_ms
        if stream[part] >= start + truth.window_ms + truth.grace_ms:
            late.add(event["event_id"])
        stream[part] = max(stream[part], ts)
    return late


@pytest.mark.parametrize("partitions", [1, 4, 12])
def test_late_events_are_late_in_every_partitioning(scenario: Scenario, partitions: int) -> None:
    events = [event for _t, _k, event in scenario.deliveries]
    assert partitioned_late(events, partitions, scenario.truth) == scenario.truth.late_event_ids


def test_late_events_are_late_in_batch_order_too(scenario: Scenario) -> None:
    """Batching (linger 1 s) reorders across keys a little; the late set does not move."""
    events = [event for batch in batches(scenario) for event in batch.events]
    assert len(events) == len(scenario.deliveries)
    assert partitioned_late(events, 4, scenario.truth) == scenario.truth.late_event_ids


def test_truth_as_sent_judges_lateness_on_each_partition(scenario: Scenario) -> None:
    """One message per topic and linger, to partitions as a keyless producer might spread
    them: an event is late against the largest ts before it on its own partition."""
    messages = batches(scenario, grouping=Grouping.TOPIC)
    partitions = [index % 3 for index in range(len(messages))]
    truth = account_as_sent(scenario, messages, partitions)
    stream: dict[tuple[str, int], int] = defaultdict(lambda: -1)
    seen: set[str] = set()
    late = set()
    for message, part in zip(messages, partitions, strict=True):
        for event in message.events:
            ts = ts_ms(event["ts"])
            start = ts - ts % truth.window_ms
            is_late = stream[message.topic, part] >= start + truth.window_ms + truth.grace_ms
            stream[message.topic, part] = max(stream[message.topic, part], ts)
            if is_late and event["event_id"] not in seen:
                late.add(event["event_id"])
            seen.add(event["event_id"])
    assert truth.late_event_ids == late
    assert sum(w.counts["click"] for w in truth.windows.values()) == sum(
        1
        for e in {e["event_id"]: e for _t, _k, e in scenario.deliveries}.values()
        if e["type"] == "click" and e["event_id"] not in late
    )


def test_orders_follow_their_state_machine() -> None:
    scenario = incident_scenario()
    per_order: dict[str, list[str]] = defaultdict(list)
    for event in {e["event_id"]: e for e in scenario.events("orders")}.values():
        per_order[event["order_id"]].append(event["type"])
    for kinds in per_order.values():
        assert kinds.count("order_created") == 1
        assert kinds.count("order_paid") <= 1
        assert not ("order_paid" in kinds and "order_cancelled" in kinds)
        assert kinds.count("order_cancelled") <= 1
    failures = sum(kinds.count("payment_failed") for kinds in per_order.values())
    assert failures > sum(1 for kinds in per_order.values() if "payment_failed" in kinds)


def test_counts_by_topic_and_type_add_up(scenario: Scenario) -> None:
    truth = scenario.truth
    assert truth.deliveries == len(scenario.deliveries)
    assert sum(truth.events_by_topic.values()) + truth.duplicates == len(scenario.deliveries)
    assert sum(truth.events_by_type.values()) == sum(truth.events_by_topic.values())
    delivered = scenario.deliveries_by_topic()
    for topic, count in truth.events_by_topic.items():
        assert delivered[topic] == count + truth.duplicates_by_topic[topic]


def test_order_retries_count_the_earliest_event_in_either_arrival_order() -> None:
    scenario = retry_scenario()
    late = scenario.truth.late_event_ids
    per_order: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    seen: set[str] = set()
    for event in scenario.events("orders"):
        if event["event_id"] not in seen and event["type"] in ("order_created", "order_paid"):
            seen.add(event["event_id"])
            per_order[(event["type"], event["order_id"])].append(event)
    retried = [events for events in per_order.values() if len(events) == 2]
    assert len(retried) > 100
    assert all(len(events) <= 2 for events in per_order.values())
    window_ms = scenario.config.window_ms
    earliest_first = later_first = other_window = late_earliest = 0
    for first, second in retried:
        a, b = ts_ms(first["ts"]), ts_ms(second["ts"])
        earliest_first += a < b
        later_first += b < a
        other_window += a // window_ms != b // window_ms
        late_earliest += (first if a < b else second)["event_id"] in late
    assert min(earliest_first, later_first, other_window, late_earliest) > 0
    # a late copy of an on-time event is a duplicate, not late
    copies = [e for e in scenario.events() if e["event_id"] in late]
    assert len(copies) == len(late)
