"""The inventory stage's bookkeeping without a broker: index, gauges, counters, listeners,
settings, the one-key lookup and the API's query parsing. (Through Kafka:
tests/integration/test_inventory_pipeline.py.)"""

from __future__ import annotations

import faust
import pytest

from streams.contract.errors import ConfigError
from streams.inventory.agent import InventoryStage, PartitionMeta
from streams.inventory.api import parse_limit, parse_statuses
from streams.inventory.changes import StockChange
from streams.inventory.stock import Status, StockStatus, apply_changes
from streams.runtime.metrics import TOP_SKUS, Metrics
from streams.runtime.settings import load_settings
from streams.runtime.topics import Topics

HOUR = 3_600_000
T0 = 1_700_000_000_000


@pytest.fixture
def stage() -> InventoryStage:
    settings = load_settings(max_store_labels=1)
    app = faust.App("test-inventory", broker="kafka://127.0.0.1:1", store="memory://")
    metrics = Metrics(max_stores=settings.max_store_labels)
    return InventoryStage(app, settings, Topics.declare(app, settings), metrics)


def change(sku: str, status: Status, previous: Status | None, store: str = "s1") -> StockStatus:
    available = {Status.OK: 100, Status.LOW: 3, Status.OUT: 0}[status]
    return StockStatus(store, sku, status, previous, available, 1.0, available / 1.0, 0)


def value(stage: InventoryStage, name: str, store: str) -> float | None:
    return stage.metrics.registry.get_sample_value(name, {"store": store})


async def test_gauges_counters_and_listeners_follow_transitions(stage: InventoryStage) -> None:
    heard: list[StockStatus] = []

    async def listener(status: StockStatus) -> None:
        heard.append(status)

    async def broken(status: StockStatus) -> None:
        raise RuntimeError("a detector bug must not stop the stage")

    stage.listeners += [broken, listener]
    await stage._publish(
        [
            change("a", Status.LOW, Status.OK),
            change("b", Status.OUT, Status.OK),
            change("c", Status.OUT, None),  # announced after a load: not a new stock-out
            change("x", Status.OUT, Status.LOW, store="s2"),  # past the label cap: other
        ]
    )
    assert len(heard) == 4
    assert value(stage, "salewatch_low_stock_skus", "s1") == 1
    assert value(stage, "salewatch_stock_out_skus", "s1") == 2
    assert value(stage, "salewatch_stock_out_skus", "other") == 1
    assert value(stage, "salewatch_stockouts_total", "s1") == 1
    await stage._publish([change("a", Status.OUT, Status.LOW), change("b", Status.OK, Status.OUT)])
    assert value(stage, "salewatch_low_stock_skus", "s1") == 0
    assert value(stage, "salewatch_stock_out_skus", "s1") == 2
    assert value(stage, "salewatch_stockouts_total", "s1") == 2
    assert [s.sku for s in stage.flagged("s1", [Status.OUT, Status.LOW])] == ["a", "c"]
    stage.forget_partitions()
    assert value(stage, "salewatch_stock_out_skus", "s1") == 0
    assert value(stage, "salewatch_stock_out_skus", "other") == 0
    assert stage.flagged("s1", [Status.OUT]) == []


async def test_top_skus_per_store_are_bounded_and_follow_the_index(stage: InventoryStage) -> None:
    def top(name: str, store: str = "s1") -> dict[str, float]:
        return {
            sample.labels["sku"]: sample.value
            for family in stage.metrics.registry.collect()
            if family.name == name
            for sample in family.samples
            if sample.labels["store"] == store
        }

    def out(sku: str, available: int, store: str = "s1") -> StockStatus:
        return StockStatus(store, sku, Status.OUT, Status.OK, available, 1.0, None, 0)

    await stage._publish([out(f"k{i}", -i) for i in range(TOP_SKUS + 3)])
    await stage._publish([change("low", Status.LOW, Status.OK), out("x", -1, store="s2")])
    most_oversold = {f"k{i}": float(-i) for i in range(7, 7 - TOP_SKUS, -1)}
    assert top("salewatch_stock_out_top_skus") == most_oversold
    assert top("salewatch_low_stock_top_skus") == {"low": 3.0}
    assert top("salewatch_stock_out_top_skus", "other") == {}  # past the store cap: not shown
    await stage._publish([StockStatus("s1", "k7", Status.OK, Status.OUT, 5, 1.0, None, 0)])
    assert "k7" not in top("salewatch_stock_out_top_skus")
    assert len(top("salewatch_stock_out_top_skus")) == TOP_SKUS
    stage.forget_partitions()
    assert top("salewatch_stock_out_top_skus") == top("salewatch_low_stock_top_skus") == {}


def test_the_horizons_come_from_the_settings(stage: InventoryStage) -> None:
    assert stage.rules.dedup_horizon_ms == stage.settings.dedup_horizon_ms == HOUR // 4
    assert stage.rules.snapshot_horizon_ms == stage.settings.snapshot_horizon_ms == 6 * HOUR
    with pytest.raises(ConfigError, match=r"SALEWATCH_SNAPSHOT_HORIZON_MS .* SALEWATCH_DEDUP"):
        load_settings(snapshot_horizon_ms=HOUR // 4 - 1)


def stock(kind: str, ts: int, qty: int) -> StockChange:
    return StockChange(id=f"{kind}-{ts}", store_id="s1", sku="A", ts=ts, kind=kind, qty=qty)


def test_lookup_shows_the_snapshots_refused_as_inexact(stage: InventoryStage) -> None:
    table = stage.table.data
    for batch in (
        [stock("snapshot", T0, 10), stock("hold", T0 + 5, -1), stock("hold", T0 + 7 * HOUR, -1)],
        [stock("snapshot", T0 + 2, 50)],  # 7 hours late: the first hold is folded
    ):
        table.update(apply_changes(table, batch, stage.rules).encoded)
    body = stage.lookup("s1", "A")
    assert body is not None
    assert (body["available"], body["snapshot_ts"]) == (8, T0)
    assert (body["inexact_snapshots"], body["last_inexact_snapshot_ts"]) == (1, T0 + 2)


async def test_a_quiet_key_turns_slow_when_its_partitions_event_time_passes_the_due_time(
    stage: InventoryStage,
) -> None:
    heard: list[StockStatus] = []

    async def listener(status: StockStatus) -> None:
        heard.append(status)

    stage.listeners.append(listener)
    outcome = apply_changes(stage.table.data, [stock("snapshot", T0, 10)], stage.rules)
    stage.table.data.update(outcome.encoded)
    stage.quiet.set("s1|A", outcome.quiet_due["s1|A"])
    p = stage.key_partition("s1", "A")
    stage.partitions[p] = PartitionMeta(stream_ms=T0 + HOUR - 1)
    assert stage._quiet_due_now() == []  # an hour unsold is due at T0 + 1 h, not before
    stage.partitions[p] = PartitionMeta(stream_ms=T0 + HOUR)
    [slow] = stage._quiet_due_now()
    assert (slow.sku, slow.status, slow.previous, slow.last_sale_ts) == (
        "A", Status.SLOW, Status.OK, None,
    )  # fmt: skip
    assert len(stage.quiet) == 0 and stage._quiet_due_now() == []
    await stage._publish([slow])
    assert value(stage, "salewatch_slow_moving_skus", "s1") == 1
    assert [s.sku for s in stage.flagged("s1", [Status.SLOW])] == ["A"] and heard == [slow]


def test_query_parsing() -> None:
    assert parse_statuses(None) == [Status.OUT, Status.LOW]
    assert parse_statuses("low") == [Status.LOW]
    assert parse_statuses("slow") == [Status.SLOW]
    assert parse_statuses("out, low,out") == [Status.OUT, Status.LOW]
    assert parse_statuses("ok") is None
    assert parse_statuses("gone") is None
    assert parse_limit(None) == 100
    assert parse_limit("5") == 5
    assert parse_limit("0") is None
    assert parse_limit("many") is None
