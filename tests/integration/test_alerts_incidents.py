"""Issue "Alerts on-call can trust": window detectors against the REAL Alertmanager.

One simulated run (10 s windows, 3 stores, store ids unique to the run) with three injected
incidents from 150 s on, after a warm-up that teaches the baselines: a payment outage on the
flagship's app channel, a broken checkout in store 1, and store 2 going silent on every
channel. Each must fire its alert, with the right labels, and nothing outside the
simulator's expected and allowed alerts may fire.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulator import Incident, ScenarioConfig, generate, produce
from simulator.truth import GroundTruth
from tests.support.alerts import (
    NOT_CATALOG,
    alert_records,
    am_alerts,
    incident_alerts,
    unique_stores,
    wait_for,
    write_campaign,
)
from tests.support.stack import Stack
from tests.support.worker import Worker, WorkerFactory

pytestmark = pytest.mark.integration

WINDOW_MS = 10_000
SETTINGS = {"window_ms": WINDOW_MS, "grace_ms": 2_000, "idle_ms": 2_000}
TIMEOUT_S = 120


@dataclass
class Run:
    workers: WorkerFactory
    worker: Worker
    truth: GroundTruth
    prefix: str

    @property
    def am(self) -> str:
        return self.workers.stack.alertmanager_url

    def store(self, index: int) -> str:
        return f"{self.prefix}store-{index:03d}"

    def wait(self, **matchers: str) -> list[dict[str, Any]]:
        return wait_for(lambda: am_alerts(self.am, **matchers), TIMEOUT_S, interval_s=0.5)


@pytest.fixture(scope="module")
def run(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workers = WorkerFactory(stack, tmp_path_factory.mktemp("alert-incidents"))
    prefix = f"r{workers.run_id}-"
    config = ScenarioConfig(
        seed=3, duration_s=270, base_rate=800, stores=3, flagship_share=0.4,
        window_ms=WINDOW_MS, grace_ms=2_000, skus_per_store=300, flash_sales=(),
        rush_multiplier=1.0,
        incidents=(
            Incident("payment_outage", 150, None, store=0, channel="app"),
            Incident("broken_checkout", 150, None, store=1),
            *(Incident("traffic_stop", 150, None, store=2, channel=channel)
              for channel in ("app", "web", "miniapp", "live")),
        ),
    )  # fmt: skip
    scenario = generate(config)
    unique_stores(scenario, prefix)
    campaign = write_campaign(Path(workers.tmp) / "campaign.yml")
    try:
        worker = workers.start(
            alertmanager_url=stack.alertmanager_url, campaign_file=campaign, **SETTINGS
        )
        # paced like live traffic (event time x 10): a replay flat out is a backlog; gzip:
        # the worker's client reads it whatever compression libraries are installed
        produce(scenario, stack.kafka_bootstrap, topic_prefix=workers.topic_prefix,
                speed=10.0, compression="gzip")  # fmt: skip
        yield Run(workers, worker, scenario.truth, prefix)
    finally:
        workers.stop_all()


def test_payment_outage_on_one_channel_fires_for_that_channel_only(run: Run) -> None:
    store = run.store(0)
    (alert,) = run.wait(alertname="PaymentFailureSpike", store_id=store)
    assert alert["labels"] == {
        "alertname": "PaymentFailureSpike", "severity": "critical", "source": "salewatch",
        "store_id": store, "channel": "app",
    }  # fmt: skip
    annotations = alert["annotations"]
    assert "payment attempts failed" in annotations["description"]
    assert annotations["runbook_url"].endswith("#paymentfailurespike")
    assert annotations["event_time"] >= "2026-11-10T15:52:30"  # the outage began at 150 s
    assert "var-channel=app" in alert["generatorURL"]


def test_broken_checkout_fires_conversion_drop_at_the_order_stage(run: Run) -> None:
    store = run.store(1)
    alerts = run.wait(alertname="ConversionDrop", store_id=store, channel="app")
    assert {a["labels"]["stage"] for a in alerts} == {"order"}
    assert alerts[0]["labels"]["severity"] == "critical"
    every = am_alerts(run.am, alertname="ConversionDrop", store_id=store)
    assert {a["labels"]["stage"] for a in every} == {"order"}


def test_a_stopped_store_fires_traffic_drop(run: Run) -> None:
    store = run.store(2)
    run.wait(alertname="TrafficDrop", store_id=store, channel="app")
    run.wait(alertname="TrafficDrop", store_id=store, channel="miniapp")
    every = am_alerts(run.am, alertname="TrafficDrop", store_id=store)
    assert {a["labels"]["severity"] for a in every} == {"critical"}


def test_nothing_fires_beyond_the_incidents(run: Run) -> None:
    run.wait(alertname="TrafficDrop", store_id=run.store(2), channel="app")
    allowed = {
        (a.alertname, tuple(sorted(a.labels.items())))
        for a in (*run.truth.expected_alerts, *run.truth.allowed_alerts)
    }
    records = incident_alerts(
        alert_records(
            run.workers.stack.kafka_bootstrap, run.workers.output_topic("alerts"), timeout_s=3
        )
    )
    assert records
    fired = set()
    for record in records:
        labels = dict(record["labels"])
        alertname = labels.pop("alertname")
        for name in ("severity", "source"):
            labels.pop(name)
        fired.add((alertname, tuple(sorted(labels.items()))))
    assert fired <= allowed, fired - allowed
    in_am = am_alerts(run.am, f'store_id=~"{run.prefix}.*"', NOT_CATALOG)
    assert {a["labels"]["alertname"] for a in in_am} <= {
        "PaymentFailureSpike", "ConversionDrop", "TrafficDrop"
    }  # fmt: skip
