"""The detectors on simulated Double 11 traffic (the simulator's ground-truth windows fed
through the per-partition evaluators, no Kafka): injected incidents fire their alert and
nothing else; the midnight rush, a flash sale and a quiet night fire nothing."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest

from alerts.campaign import Calendar, CampaignFile
from alerts.detectors import Signal
from alerts.evaluation import FunnelEvaluator
from simulator import FlashSale, Incident, ScenarioConfig, generate
from simulator.truth import ExpectedAlert, GroundTruth
from streams.contract.routing import merge_partition
from tests.support.alerts import TEST_THRESHOLDS

PARTITIONS = 4
START = ScenarioConfig().start


def replay(config: ScenarioConfig, calendar: Calendar) -> tuple[GroundTruth, list[Signal]]:
    """Final windows in event-time order, the frontier advancing one window at a time."""
    truth = generate(config).truth
    w = config.window_ms
    evaluators = {q: FunnelEvaluator(q, w, calendar) for q in range(PARTITIONS)}
    by_start: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for (store_id, channel, start), window in truth.windows.items():
        by_start[start].append({
            "store_id": store_id, "channel": channel, "window_start": start,
            "window_end": start + w, "counts": window.counts,
            "paid_orders": window.paid_orders, "payment_failed": window.payment_failed,
            "refund_requested": window.refund_requested,
        })  # fmt: skip
    signals = []
    for start in sorted(by_start):
        for record in by_start[start]:
            evaluators[merge_partition(record["store_id"], PARTITIONS)].add(record)
        for evaluator in evaluators.values():
            signals.extend(evaluator.advance(start + w).signals)
    return truth, signals


def key(alertname: str, labels: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return alertname, tuple(sorted(labels.items()))


def fired_keys(signals: list[Signal]) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {key(s.alertname, dict(s.labels)) for s in signals if s.firing}


def allowed(truth: GroundTruth) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    alerts: list[ExpectedAlert] = [*truth.expected_alerts, *truth.allowed_alerts]
    return {key(a.alertname, a.labels) for a in alerts}


def test_incidents_fire_their_alert_and_nothing_else() -> None:
    config = ScenarioConfig(
        seed=3, duration_s=360, base_rate=800, stores=3, flagship_share=0.4,
        window_ms=10_000, grace_ms=2_000, skus_per_store=300, flash_sales=(),
        rush_multiplier=1.0,
        incidents=(
            Incident("payment_outage", 150, 300, store=0, channel="app"),
            Incident("broken_checkout", 150, 300, store=1),
            *(Incident("traffic_stop", 150, None, store=2, channel=channel)
              for channel in ("app", "web", "miniapp", "live")),
        ),
    )  # fmt: skip
    calendar = Calendar.build(CampaignFile.model_validate({"thresholds": TEST_THRESHOLDS}))
    truth, signals = replay(config, calendar)
    fired = fired_keys(signals)
    assert fired <= allowed(truth), fired - allowed(truth)
    assert {
        key("PaymentFailureSpike", {"store_id": "store-000", "channel": "app"}),
        key("ConversionDrop", {"store_id": "store-001", "channel": "app", "stage": "order"}),
        key("TrafficDrop", {"store_id": "store-002", "channel": "app"}),
        key("TrafficDrop", {"store_id": "store-002", "channel": "miniapp"}),
    } <= fired
    # detected within 3 windows of the incident's start (event time)
    start_ms = config.at_ms(150)
    first = {key(s.alertname, dict(s.labels)): s for s in reversed(signals) if s.firing}
    for signal in first.values():
        assert start_ms <= signal.event_ms <= start_ms + 3 * config.window_ms, signal


def test_refund_wave_fires_refund_surge_with_default_thresholds() -> None:
    config = ScenarioConfig(
        seed=5, duration_s=960, base_rate=400, stores=1, window_ms=60_000, grace_ms=10_000,
        skus_per_store=300, flash_sales=(), rush_multiplier=1.0,
        incidents=(Incident("refund_wave", 600, None, store=0),),
    )  # fmt: skip
    _, signals = replay(config, Calendar.build(CampaignFile()))
    assert fired_keys(signals) == {key("RefundSurge", {"store_id": "store-000"})}


def decoy_calendar(rush_s: float, rush_minutes: float, flash: FlashSale) -> Calendar:
    rush = START + timedelta(seconds=rush_s)
    phases = [
        {"name": "midnight-peak", "start": rush, "end": rush + timedelta(minutes=rush_minutes),
         "traffic_multiplier": 20},
        {"name": "flash-sale", "start": START + timedelta(seconds=flash.start_s),
         "end": START + timedelta(seconds=flash.end_s), "stores": ["store-001"],
         "traffic_multiplier": 1 + flash.surge, "baseline": "hold"},
    ]  # fmt: skip
    return Calendar.build(
        CampaignFile.model_validate({"thresholds": TEST_THRESHOLDS, "phases": phases})
    )


@pytest.mark.parametrize("seed", [5, 6])
def test_midnight_rush_and_flash_sale_fire_nothing(seed: int) -> None:
    flash = FlashSale(start_s=60, end_s=120, store=1, surge=3.0)
    config = ScenarioConfig(
        seed=seed, duration_s=360, base_rate=400, stores=3, flagship_share=0.4,
        window_ms=10_000, grace_ms=2_000, skus_per_store=300, flash_sales=(flash,),
        rush_at=START + timedelta(seconds=150), rush_minutes=1.0, rush_multiplier=20.0,
    )  # fmt: skip
    truth, signals = replay(config, decoy_calendar(150, 1.0, flash))
    assert truth.expected_alerts == []
    assert fired_keys(signals) == set()


def test_a_quiet_night_fires_nothing() -> None:
    config = ScenarioConfig(
        seed=8, duration_s=900, base_rate=30, stores=3, window_ms=10_000, grace_ms=2_000,
        skus_per_store=300, flash_sales=(), rush_multiplier=1.0,
    )  # fmt: skip
    calendar = Calendar.build(CampaignFile.model_validate({"thresholds": TEST_THRESHOLDS}))
    truth, signals = replay(config, calendar)
    assert truth.expected_alerts == [] and fired_keys(signals) == set()
