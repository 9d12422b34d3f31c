"""Issue "Alerts on-call can trust": expected surges and noise fire NOTHING, end to end with
the REAL Alertmanager: a Double 11 midnight rush at x20 traffic with steady conversion and
a scheduled flash sale starting and ending (both in the campaign calendar), and a quiet
night. Store ids are unique to each run; "nothing" is checked on the alerts topic and in
Alertmanager once every window of the scenario is final."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from simulator import FlashSale, ScenarioConfig, generate, produce
from tests.support.alerts import (
    NOT_CATALOG,
    alert_records,
    am_alerts,
    incident_alerts,
    unique_stores,
    wait_for,
    write_campaign,
)
from tests.support.kafka import consume
from tests.support.worker import WorkerFactory

pytestmark = pytest.mark.integration

WINDOW_MS = 10_000
SETTINGS = {"window_ms": WINDOW_MS, "grace_ms": 2_000, "idle_ms": 2_000}
START = ScenarioConfig().start


def prefix(workers: WorkerFactory) -> str:
    return f"r{workers.run_id}-"


def run_and_expect_silence(
    workers: WorkerFactory, config: ScenarioConfig, phases: list[dict[str, object]], speed: float
) -> int:
    """Produce the scenario through a worker; assert no alert; return windows judged."""
    scenario = generate(config)
    assert scenario.truth.expected_alerts == []
    unique_stores(scenario, prefix(workers))
    campaign = write_campaign(Path(workers.tmp) / "campaign.yml", phases)
    stack = workers.stack
    workers.start(alertmanager_url=stack.alertmanager_url, campaign_file=campaign, **SETTINGS)
    # paced like live traffic (event time x `speed`): a replay flat out is a backlog, not a
    # sale; gzip: the worker's client reads it whatever compression libraries are installed
    produce(scenario, stack.kafka_bootstrap, topic_prefix=workers.topic_prefix, speed=speed,
            compression="gzip")  # fmt: skip
    expected = len(scenario.truth.windows)
    last = max(start for _, _, start in scenario.truth.windows)
    topic = workers.output_topic("windows")

    def final_windows() -> list[dict[str, object]]:
        windows = [
            orjson.loads(r.value) for r in consume(stack.kafka_bootstrap, topic, expected, 2)
        ]
        return windows if any(w["window_start"] == last for w in windows) else []

    # the frontier passed the end: every window the pipeline emitted was judged (that the
    # windows equal the ground truth is tests/integration/test_funnel_pipeline.py's job)
    windows = wait_for(final_windows, 90, interval_s=0.5)
    assert len(windows) >= 0.95 * expected, (len(windows), expected)
    records = alert_records(stack.kafka_bootstrap, workers.output_topic("alerts"), 3)
    assert incident_alerts(records) == []
    assert am_alerts(stack.alertmanager_url, f'store_id=~"{prefix(workers)}.*"', NOT_CATALOG) == []
    return len(windows)


def test_midnight_rush_and_flash_sale_fire_nothing(workers: WorkerFactory) -> None:
    rush_at = START + timedelta(seconds=150)
    flash = FlashSale(start_s=60, end_s=120, store=1, surge=3.0)
    config = ScenarioConfig(
        seed=5, duration_s=300, base_rate=300, stores=3, flagship_share=0.4,
        window_ms=WINDOW_MS, grace_ms=2_000, skus_per_store=300, flash_sales=(flash,),
        rush_at=rush_at, rush_minutes=1.0, rush_multiplier=20.0,
    )  # fmt: skip
    phases: list[dict[str, object]] = [
        {"name": "midnight-peak", "start": rush_at.isoformat(),
         "end": (rush_at + timedelta(minutes=1)).isoformat(), "traffic_multiplier": 20},
        {"name": "flash-sale", "stores": [prefix(workers) + "store-001"],
         "start": (START + timedelta(seconds=flash.start_s)).isoformat(),
         "end": (START + timedelta(seconds=flash.end_s)).isoformat(),
         "traffic_multiplier": 1 + flash.surge, "baseline": "hold"},
    ]  # fmt: skip
    assert run_and_expect_silence(workers, config, phases, speed=10.0) > 300


def test_a_quiet_night_fires_nothing(workers: WorkerFactory) -> None:
    config = ScenarioConfig(
        seed=8, duration_s=600, base_rate=30, stores=3, window_ms=WINDOW_MS, grace_ms=2_000,
        skus_per_store=300, flash_sales=(), rush_multiplier=1.0,
    )  # fmt: skip
    assert run_and_expect_silence(workers, config, [], speed=40.0) > 300
