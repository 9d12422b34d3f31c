"""The operations KPIs of every final window equal the simulator's ground truth: visit
depth (page views exact, visitors within the sketch bounds), traffic by source and
category, after-sales (refund amount, returns, complaints), new and returning buyers
(decided by event time, with the stores' own `first_purchase` flags), campaign spend and
ROI; the metrics add up to the same truth; the slow-moving SKUs the API lists are those
the truth says sold nothing for the configured minute.

A backfill with random keys, duplicates, out-of-order and late events and order retries
into two workers: arrival order is as far from event-time order as the pipeline sees.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import yaml

from simulator import KeyMode, ScenarioConfig, generate, produce
from tests.support.kafka import consume
from tests.support.windows import window_differences, window_id
from tests.support.worker import Worker, WorkerFactory

pytestmark = pytest.mark.integration

WINDOW_MS, GRACE_MS = 10_000, 3_000
QUIET_MS = 60_000  # slow-moving after a minute unsold
# a stock partition's event time (its latest change) may trail the scenario's end by this
STREAM_LAG_MS = 15_000
SPEND_APP = Decimal(9_000)  # per store, over the whole scenario


def test_operations_kpis_equal_the_ground_truth(workers: WorkerFactory, tmp_path: Path) -> None:
    config = ScenarioConfig(
        seed=16, duration_s=300, base_rate=200, stores=2, skus_per_store=100, users=800,
        window_ms=WINDOW_MS, grace_ms=GRACE_MS, key_mode=KeyMode.RANDOM,
        duplicate_rate=0.02, out_of_order_rate=0.1, late_rate=0.003,
        order_retry_rate=0.2, flash_sales=(), rush_minutes=0, snapshot_interval_s=60,
    )  # fmt: skip
    scenario = generate(config)
    truth = scenario.truth
    windows = truth.windows.values()
    # the scenario exercises every KPI (else the comparison below could not fail)
    assert sum(len(w.returning_buyers) for w in windows) >= 10
    assert sum(len(w.new_buyers) for w in windows) >= 50
    assert sum(w.returns for w in windows) and sum(w.complaints for w in windows)
    assert any(w.by_source for w in windows) and any(w.by_category for w in windows)

    campaign = tmp_path / "campaign.yml"
    campaign.write_text(yaml.safe_dump({"phases": [{
        "name": "sale", "start": _iso(config.start_ms), "end": _iso(config.end_ms),
        "spend": {"app": str(SPEND_APP)},
    }]}))  # fmt: skip
    settings = {"window_ms": WINDOW_MS, "grace_ms": GRACE_MS, "idle_ms": 2_000,
                "partitions": 4, "campaign_file": campaign,
                "slow_moving_minutes": QUIET_MS / 60_000,
                "slow_cover_hours": 1e6}  # only the quiet rule  # fmt: skip
    produce(scenario, workers.stack.kafka_bootstrap, topic_prefix=workers.topic_prefix)
    first, second = workers.start(**settings), workers.start(**settings)

    topic = workers.output_topic("windows")
    bootstrap = workers.stack.kafka_bootstrap
    consume(bootstrap, topic, len(truth.windows), timeout_s=180)
    time.sleep(3)  # anything emitted twice would arrive now
    records = [orjson.loads(r.value) for r in consume(bootstrap, topic, len(truth.windows) + 1, 5)]
    assert sorted(window_id(r) for r in records) == sorted(truth.windows)
    spend_per_window = SPEND_APP * WINDOW_MS / (config.end_ms - config.start_ms)
    for record in records:
        expected = truth.windows[window_id(record)]
        assert window_differences(record, expected) == [], window_id(record)
        if record["channel"] != "app" or record["window_start"] < config.start_ms:
            continue  # spend is on the app channel, windows inside the sale
        assert Decimal(record["spend"]["CNY"]) == spend_per_window.quantize(Decimal("0.01"))
        assert record["roi"] == pytest.approx(float(expected.gmv / spend_per_window))

    metrics = [worker.metrics() for worker in (first, second)]
    new = sum(len(w.new_buyers) for w in windows)
    returning = sum(len(w.returning_buyers) for w in windows)
    assert _sum(metrics, "salewatch_buyers_total{", 'kind="new"') == new
    assert _sum(metrics, "salewatch_buyers_total{", 'kind="returning"') == returning
    assert _sum(metrics, "salewatch_complaints_total{") == sum(w.complaints for w in windows)
    assert _sum(metrics, "salewatch_returns_total{") == sum(w.returns for w in windows)

    # slow-moving: the SKUs listed are those unsold for a minute before the end of the sale
    # (event time), give or take how far a stock partition's event time trails the end
    surely = truth.slow_moving(config.end_ms - STREAM_LAG_MS, QUIET_MS)
    stores = sorted({store for store, _sku in truth.inventory})
    deadline = time.monotonic() + 30
    while True:  # the stage's tick turns quiet keys slow within a second or two
        listed = _slow_listed(first, stores)
        if surely <= listed or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert surely and surely <= listed <= truth.slow_moving(config.end_ms, QUIET_MS)
    assert set(truth.inventory) - listed, "SKUs that sold recently are not slow"


def _slow_listed(worker: Worker, stores: list[str]) -> set[tuple[str, str]]:
    listed = set()
    for store in stores:
        status, body = worker.get(f"/api/stock/{store}?status=slow&limit=10000")
        answer = orjson.loads(body)
        assert status == 200 and answer["complete"], answer
        listed |= {(s["store_id"], s["sku"]) for s in answer["skus"]}
    return listed


def _sum(expositions: list[str], prefix: str, *having: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for text in expositions
        for line in text.splitlines()
        if line.startswith(prefix) and all(part in line for part in having)
    )


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat()
