"""Issue: the inventory table equals the simulator's ground truth for every store x SKU.

Real broker, 4 partitions, random message keys; duplicated, cancelled and returned orders,
sellouts, and half of the stock snapshots delivered up to 3 minutes late (so they arrive
after changes newer than them, and some after the next snapshot). Compared through the
HTTP API, which redirects to the worker that owns a key; a worker stopped mid-run and
started again (SIGTERM or SIGKILL; memory or RocksDB store) restores the table from its
changelog.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import pytest

from simulator import Incident, KeyMode, Scenario, ScenarioConfig, generate, produce
from tests.support.inventory import get, stock, stock_differences, wait_consumed
from tests.support.worker import Worker, WorkerFactory

pytestmark = pytest.mark.integration

PARTITIONS = 4


def inventory_scenario(seed: int) -> Scenario:
    config = ScenarioConfig(
        seed=seed,
        duration_s=600,
        base_rate=100,
        stores=3,
        skus_per_store=200,
        key_mode=KeyMode.RANDOM,
        duplicate_rate=0.03,
        out_of_order_rate=0.2,
        snapshot_interval_s=60,
        incidents=(Incident("sellout", 120, 400), Incident("sellout", 200, None, store=1)),
    )
    return with_late_snapshots(generate(config), random.Random(seed))


def with_late_snapshots(scenario: Scenario, rnd: random.Random, share: float = 0.5,
                        max_delay_ms: int = 180_000) -> Scenario:  # fmt: skip
    """The same events, with a share of the stock snapshots delivered later."""
    timed = []
    for index, (delivery, at) in enumerate(
        zip(scenario.deliveries, scenario.delivered_at_ms, strict=True)
    ):
        if delivery.event["type"] == "stock_snapshot" and rnd.random() < share:
            at += rnd.randrange(1, max_delay_ms)
        timed.append((at, index, delivery))
    timed.sort(key=lambda item: item[:2])
    return Scenario(
        scenario.config, [d for _, _, d in timed], [at for at, _, _ in timed], scenario.truth
    )


def check_scenario(scenario: Scenario) -> None:
    types = {d.event["type"] for d in scenario.deliveries}
    assert {"order_cancelled", "return_received", "restock", "stock_adjust"} <= types
    assert scenario.truth.duplicates > 0
    assert any(available <= 0 for available in scenario.truth.inventory.values())


def assert_inventory_equals_truth(scenario: Scenario, worker: Worker) -> None:
    truth = scenario.truth.inventory
    wrong = stock_differences(worker, truth)
    assert not wrong, f"{len(wrong)} of {len(truth)} keys differ (truth, table): {wrong}"
    for store_id in sorted({store_id for store_id, _ in truth}):
        body = stock(worker, f"/api/stock/{store_id}?status=out&limit=10000")
        assert body["complete"] is True
        listed = {item["sku"] for item in body["skus"]}  # type: ignore[attr-defined]
        assert listed == {sku for (s, sku), v in truth.items() if s == store_id and v <= 0}


def metric_sum(workers: Iterable[Worker], name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for worker in workers
        for line in get(worker.url + "/metrics")[1].decode().splitlines()
        if line.startswith(name + "{")
    )


def processed(worker: Worker) -> dict[str, float]:
    """Events through each pipeline step on this worker so far."""
    return {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in get(worker.url + "/metrics")[1].decode().splitlines()
        if line.startswith("salewatch_processed_events_total{")
    }


def test_inventory_equals_ground_truth_with_two_workers(workers: WorkerFactory) -> None:
    scenario = inventory_scenario(seed=21)
    check_scenario(scenario)
    first = workers.start(partitions=PARTITIONS)
    second = workers.start(partitions=PARTITIONS)
    produce(scenario, workers.stack.kafka_bootstrap, topic_prefix=workers.topic_prefix)
    wait_consumed(workers)

    assert_inventory_equals_truth(scenario, first)
    out = sum(1 for v in scenario.truth.inventory.values() if v <= 0)
    assert metric_sum([first, second], "salewatch_stock_out_skus") == out
    assert metric_sum([first, second], "salewatch_stockouts_total") >= out
    restocks = scenario.truth.events_by_type["restock"]
    assert metric_sum([first, second], "salewatch_restocks_total") == restocks
    # the other worker answers the same, by redirect or from its own partitions
    body = stock(second, f"/api/stock/{next(iter(scenario.truth.inventory))[0]}?status=out,low")
    assert body["complete"] is True


@pytest.mark.parametrize(
    ("store", "sig"),
    [
        pytest.param("memory://", signal.SIGTERM, id="memory-sigterm"),
        pytest.param("memory://", signal.SIGKILL, id="memory-sigkill"),
        pytest.param("rocksdb://", signal.SIGTERM, id="rocksdb-sigterm"),
    ],
)
def test_inventory_survives_a_restart_mid_run(workers: WorkerFactory, sig: int, store: str) -> None:
    """The first half of the sale is consumed; the worker stops while the second half
    arrives, and a new one takes over."""
    scenario = inventory_scenario(seed=22)
    check_scenario(scenario)
    first_half, second_half = split(scenario, len(scenario) // 2)
    bootstrap, prefix = workers.stack.kafka_bootstrap, workers.topic_prefix
    worker = workers.start(store=store, partitions=PARTITIONS)
    produce(first_half, bootstrap, topic_prefix=prefix)
    wait_for(worker, lambda steps: steps.get("inventory", 0) > 0)
    with ThreadPoolExecutor(1) as pool:
        producing = pool.submit(produce, second_half, bootstrap, topic_prefix=prefix)
        wait_for(worker, lambda steps: steps.get("ingest", 0) > len(first_half))
        worker.stop(sig)
        producing.result()
    restarted = workers.start(wait_healthy=False, store=store, partitions=PARTITIONS)
    # after a kill the group waits for the dead member's session to time out (60 s)
    workers.wait_healthy(restarted, timeout=150)
    wait_consumed(workers)
    assert_inventory_equals_truth(scenario, restarted)
    out = sum(1 for v in scenario.truth.inventory.values() if v <= 0)
    assert metric_sum([restarted], "salewatch_stock_out_skus") == out


def split(scenario: Scenario, at: int) -> tuple[Scenario, Scenario]:
    """The deliveries before and from `at` (each with the whole run's truth)."""
    d, t = scenario.deliveries, scenario.delivered_at_ms
    return (
        Scenario(scenario.config, d[:at], t[:at], scenario.truth),
        Scenario(scenario.config, d[at:], t[at:], scenario.truth),
    )


def wait_for(worker: Worker, ready: Callable[[dict[str, float]], bool]) -> None:
    deadline = time.monotonic() + 60
    while not ready(steps := processed(worker)):
        assert time.monotonic() < deadline, f"the worker is not consuming: {steps}"
        time.sleep(0.02)
