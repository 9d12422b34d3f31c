"""A stage-3 partition's detectors as its frontier advances: windows in event-time order,
empty windows for keys that went silent, store totals, nothing judged while no data flows."""

from __future__ import annotations

from typing import Any

import pytest

from alerts.campaign import Calendar, CampaignFile
from alerts.detectors import ChannelDetector, Sample, StoreDetector, TrackKey
from alerts.evaluation import DEFER_WINDOWS, FunnelEvaluator, Witness
from alerts.fleet import FleetRates

W = 10_000
CALENDAR = Calendar.build(CampaignFile())
TRAFFIC = TrackKey.of("TrafficDrop", {"store_id": "s1", "channel": "app"})


def record(store: str, channel: str, i: int, clicks: int = 200, **extra: Any) -> dict[str, Any]:
    counts = {"impression": clicks * 10, "click": clicks, "cart": clicks // 5,
              "order": clicks // 10, "pay": clicks // 12}  # fmt: skip
    return {"store_id": store, "channel": channel, "window_start": i * W,
            "window_end": (i + 1) * W, "counts": counts, "paid_orders": counts["pay"],
            "payment_failed": 0, "refund_requested": extra.get("refunds", 0)}  # fmt: skip


def run(
    evaluator: FunnelEvaluator, windows: range, keys: list[tuple[str, str]]
) -> list[tuple[str, dict[str, str], bool]]:
    fired = []
    for i in windows:
        for store, channel in keys:
            evaluator.add(record(store, channel, i))
        for signal in evaluator.advance((i + 1) * W).signals:
            fired.append((signal.alertname, dict(signal.labels), signal.firing))
    return fired


def test_a_store_that_stops_fires_traffic_drop_on_every_busy_channel() -> None:
    evaluator = FunnelEvaluator(0, W, CALENDAR)
    keys = [("s1", "app"), ("s1", "web"), ("s2", "app")]
    assert run(evaluator, range(10), keys) == []
    fired = run(evaluator, range(10, 13), [("s2", "app")])  # s1 sends nothing any more
    assert sorted({(name, labels["channel"]) for name, labels, _ in fired}) == [
        ("TrafficDrop", "app"), ("TrafficDrop", "web")
    ]  # fmt: skip
    assert all(labels["store_id"] == "s1" for _, labels, _ in fired)


def test_another_partition_can_witness_a_silent_window() -> None:
    witness = Witness()
    quiet, busy = FunnelEvaluator(0, W, CALENDAR, witness), FunnelEvaluator(1, W, CALENDAR, witness)
    for i in range(10):
        run(quiet, range(i, i + 1), [("s1", "app")])
        run(busy, range(i, i + 1), [("s2", "app")])
    fired = []
    for i in range(10, 14):
        # partition 0 (s1 stopped) reaches the frontier before partition 1 sends its window
        fired += [(s.alertname, s.firing) for s in quiet.advance((i + 1) * W).signals]
        run(busy, range(i, i + 1), [("s2", "app")])
    fired += [(s.alertname, s.firing) for s in quiet.advance(15 * W).signals]
    assert ("TrafficDrop", True) in fired


def test_when_no_data_flows_at_all_empty_windows_are_not_judged() -> None:
    evaluator = FunnelEvaluator(0, W, CALENDAR)
    keys = [("s1", "app"), ("s2", "app")]
    run(evaluator, range(10), keys)
    # the end of a replay or a feed outage: no window anywhere, the frontier moves on
    for i in range(10, 20):
        assert evaluator.advance((i + 1) * W).signals == []
    assert evaluator.channels["s1", "app"].next_start == (20 - DEFER_WINDOWS) * W
    # data again: the gap stays unjudged, the keys carry on
    assert run(evaluator, range(20, 25), keys) == []


def test_a_silent_key_is_forgotten_and_its_alerts_resolve() -> None:
    calendar = Calendar.build(
        CampaignFile.model_validate({"thresholds": {"traffic": {"forget_after_s": 60}}})
    )
    evaluator = FunnelEvaluator(0, W, calendar)
    run(evaluator, range(10), [("s1", "app"), ("s2", "app")])
    fired = run(evaluator, range(10, 20), [("s2", "app")])
    s1 = [(name, firing) for name, labels, firing in fired if labels["store_id"] == "s1"]
    assert s1[0] == ("TrafficDrop", True) and s1[-1] == ("TrafficDrop", False)
    assert ("s1", "app") not in evaluator.channels and "s1" not in evaluator.stores


def test_a_jump_of_the_frontier_judges_a_bounded_number_of_windows() -> None:
    evaluator = FunnelEvaluator(0, W, CALENDAR)
    run(evaluator, range(10), [("s1", "app")])
    for i in range(10, 1_000):
        evaluator.witness.add(i * W)
    evaluator.advance(1_000 * W)
    recent = evaluator.channels["s1", "app"].tracks[TRAFFIC].hysteresis.recent
    assert recent[-1][0] == 999 * W
    assert evaluator.channels["s1", "app"].next_start == 1_000 * W
    assert len(evaluator.witness.starts) <= 4_096


def test_refunds_are_summed_over_the_channels_of_the_store() -> None:
    evaluator = FunnelEvaluator(0, W, CALENDAR)
    keys = [("s1", "app"), ("s1", "web")]
    run(evaluator, range(12), keys)
    store = evaluator.stores["s1"]
    refunds = store.tracks[TrackKey.of("RefundSurge", {"store_id": "s1"})]
    assert refunds.pool[-1] == Sample(0, 2 * (200 // 12))


def test_windows_arrive_in_any_order_and_are_judged_once() -> None:
    evaluator = FunnelEvaluator(0, W, CALENDAR)
    for i in (2, 0, 1):
        evaluator.add(record("s1", "app", i))
    evaluator.advance(3 * W)
    detector = evaluator.channels["s1", "app"]
    assert [start for start, _ in detector.tracks[TRAFFIC].hysteresis.recent] == [0, W, 2 * W]
    assert detector.next_start == 3 * W
    evaluator.add(record("s1", "app", 1))  # a window before the frontier: ignored
    evaluator.advance(4 * W)  # window 3 had no events anywhere: it waits for a witness
    recent = detector.tracks[TRAFFIC].hysteresis.recent
    assert [start for start, _ in recent] == [0, W, 2 * W]
    evaluator.advance((4 + DEFER_WINDOWS) * W)  # none came: skipped, not judged
    assert len(recent) == 3 and detector.next_start == 4 * W


def test_restored_detectors_carry_on() -> None:
    evaluator = FunnelEvaluator(0, W, CALENDAR)
    run(evaluator, range(10), [("s1", "app")])
    channel = ChannelDetector.from_json(evaluator.channels["s1", "app"].to_json())
    store = StoreDetector.from_json(evaluator.stores["s1"].to_json())
    again = FunnelEvaluator(0, W, CALENDAR)
    again.restore([channel], [store])
    fired = run(again, range(10, 12), [("s2", "app")])
    assert [(name, firing) for name, _, firing in fired] == [("TrafficDrop", True)]


def test_the_partitions_of_a_worker_share_their_stores_refund_baselines() -> None:
    witness, fleet = Witness(), FleetRates()
    first, second = (FunnelEvaluator(q, W, CALENDAR, witness, fleet) for q in (0, 1))
    stores = {first: ["s1", "s2"], second: ["s3", "s4"]}
    for i in range(12):
        for evaluator, names in stores.items():
            for store in names:
                evaluator.add(record(store, "app", i, clicks=1_200, refunds=3))  # 3 of 100
            evaluator.advance((i + 1) * W)
    prior = fleet.prior("RefundSurge", "s1")
    assert prior is not None and prior.successes / prior.trials == pytest.approx(0.03)
    # a worker that restores a store tells the fleet its baseline at once
    again = FunnelEvaluator(0, W, CALENDAR, witness, FleetRates())
    again.restore([], [StoreDetector.from_json(first.stores["s1"].to_json())])
    assert again.fleet.rates["RefundSurge"].stores == {"s1": (3 * 7, 100 * 7)}


def test_a_store_whose_refund_rate_differs_from_the_others_keeps_its_own() -> None:
    evaluator = FunnelEvaluator(0, W, CALENDAR)
    rates = {"s1": 3, "s2": 3, "s3": 3, "s4": 15}  # refunds of 100 paid orders a window
    fired = []
    for i in range(40):
        for store, refunds in rates.items():
            evaluator.add(record(store, "app", i, clicks=1_200, refunds=refunds))
        fired += [s.alertname for s in evaluator.advance((i + 1) * W).signals]
    assert fired == []
    prior = evaluator.fleet.prior("RefundSurge", "s4")
    own = evaluator.stores["s4"].tracks[TrackKey.of("RefundSurge", {"store_id": "s4"})]
    assert prior is not None and prior.trials < 0.01 * own.baseline.volume
