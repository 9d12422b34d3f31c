"""The inventory stage on Faust: the agent over `salewatch.stock`, its table, a clock tick,
the inventory metrics and the status listeners (alert detectors).

The table maps `store_id|sku` to an encoded `StockState` (streams/inventory/stock.py), on the
stock topic's partition of that key. Each batch is grouped by partition and each touched
key written once. Per partition a meta key `#<p>` records the last stock-topic offset
applied and the partition's event time (largest change ts), written after the keys in the
same changelog partition: messages re-read after a crash at or before that offset are
skipped, and re-sent changes are recognised by their id.

Listeners get a `StockStatus` on every status change (ok, low, out, slow) and, with
`previous=None`, every key that is not ok when a partition is (re)loaded after a
rebalance or restart. When partitions are revoked the stage forgets its keys without
telling the listeners: the new owner announces them.

Slow-moving keys: a key that is ok with stock turns slow once its partition's event time
passes the key's quiet due time without a sale. The stage keeps the due time of its ok keys
in memory (`quiet`, streams/inventory/quiet.py), filled on load and on every write.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from faust.types import EventT

from streams.contract.routing import partition_for
from streams.inventory.quiet import QuietIndex
from streams.inventory.stock import (
    InventoryRules,
    Status,
    StockIndex,
    StockState,
    StockStatus,
    apply_changes,
    quiet_due,
    quiet_since_of,
    reevaluate,
)
from streams.runtime.metrics import OTHER, TOP_SKUS, Metrics
from streams.runtime.settings import Settings
from streams.runtime.stage import BatchedStage
from streams.runtime.state import partitioned_table, writing_to
from streams.runtime.topics import Topics

__all__ = ["InventoryStage", "StockListener"]

log = logging.getLogger(__name__)

TICK_S = 1.0
REEVALUATE_MS = 10_000  # a low key is looked at again after this much event time
CHUNK_CHANGES = 5_000  # changes applied between two waits for the changelog producer
MAX_QUEUED_CHANGELOG = 10_000
META_PREFIX = "#"  # store ids never start with it (docs/contract.md §2)

StockListener = Callable[[StockStatus], Awaitable[None]]


@dataclass
class PartitionMeta:
    offset: int = -1  # last stock-topic offset applied
    stream_ms: int | None = None  # the largest change ts seen: the partition's event time

    def encode(self) -> bytes:
        return orjson.dumps([self.offset, self.stream_ms])


class InventoryStage(BatchedStage):
    def __init__(self, app: faust.App, settings: Settings, topics: Topics, metrics: Metrics):
        super().__init__(app, settings)
        self.topics = topics
        self.metrics = metrics
        self.rules = InventoryRules(
            low_stock_minutes=settings.low_stock_minutes,
            velocity_half_life_ms=settings.velocity_half_life_ms,
            dedup_horizon_ms=settings.dedup_horizon_ms,
            snapshot_horizon_ms=settings.snapshot_horizon_ms,
            slow_moving_minutes=settings.slow_moving_minutes,
            slow_cover_hours=settings.slow_cover_hours,
        )
        self.table = partitioned_table(app, "inventory-stock", settings.partitions)
        self.index = StockIndex()
        self.listeners: list[StockListener] = []
        self.partitions: dict[int, PartitionMeta] = {}  # loaded partitions
        self._flag_counts: Counter[tuple[str, Status]] = Counter()  # by store label
        self._top_skus: dict[tuple[str, Status], set[str]] = defaultdict(set)  # exported
        self.quiet = QuietIndex()  # ok keys with stock, by when they turn slow unsold

    def register(self) -> None:
        self.register_agent(self.topics.stock, "inventory")
        self.app.timer(TICK_S, name="inventory-tick")(self.tick)

    @property
    def stock_topic(self) -> str:
        return self.topics.stock.get_topic_name()  # type: ignore[no-any-return]

    def key_partition(self, store_id: str, sku: str) -> int:
        return partition_for(f"{store_id}|{sku}", self.settings.partitions)

    # --- loading after a rebalance --------------------------------------------------
    def forget_partitions(self) -> None:
        self.partitions.clear()
        self.index.clear()
        self.quiet.clear()
        for label, status in list(self._flag_counts):
            self._gauge(status).labels(label).set(0)
        self._flag_counts.clear()
        for (store_id, status), skus in self._top_skus.items():
            for sku in skus:
                self._top_gauge(status).remove(store_id, sku)
        self._top_skus.clear()

    def assigned(self) -> set[int]:
        topic = self.stock_topic
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    async def partition_meta(self, p: int) -> PartitionMeta:
        meta = self.partitions.get(p)
        if meta is None:
            await self._load({p} | (self.assigned() - set(self.partitions)))
            meta = self.partitions[p]
        return meta

    async def _load(self, wanted: set[int]) -> None:
        """One scan of the table for the partitions in `wanted`: their meta, the keys that
        are not OK and the quiet due time of those that are (from the value's header, so
        most are not decoded)."""
        n = self.settings.partitions
        for p in wanted:
            self.partitions[p] = PartitionMeta()
        found: list[StockStatus] = []
        for key, raw in self.table.items():
            if key.startswith(META_PREFIX):
                p = int(key[len(META_PREFIX) :])
                if p in wanted:
                    self.partitions[p] = PartitionMeta(*orjson.loads(raw))
            elif partition_for(key, n) in wanted:
                quiet_since = quiet_since_of(raw)
                if quiet_since is not None:  # OK with stock: the header says since when
                    self.quiet.set(key, quiet_due(quiet_since, self.rules))
                    continue
                state = StockState.decode(raw)  # not OK (or OK, stored before the header)
                if state.status is Status.OK:
                    self.quiet.set(key, state.quiet_due_ms(self.rules))
                    continue
                assert state.max_ts is not None
                found.append(StockStatus.of(key, state, state.max_ts, self.rules, None))
        log.info("inventory: loaded partitions %s, %d keys low or out", sorted(wanted), len(found))
        await self._publish(found)

    # --- the hot path ---------------------------------------------------------------
    async def process(self, batch: Sequence[EventT]) -> None:
        by_partition: dict[int, list[EventT]] = defaultdict(list)
        for event in batch:
            by_partition[event.message.partition].append(event)
        for p, events in by_partition.items():
            meta = await self.partition_meta(p)
            changes: list[Any] = []
            last_offset = meta.offset
            for event in events:
                offset = event.message.offset
                if offset > meta.offset:
                    changes.extend(orjson.loads(event.value))
                    last_offset = max(last_offset, offset)
            if last_offset == meta.offset:
                continue  # all applied before a restart
            for start in range(0, len(changes), CHUNK_CHANGES):
                await self._apply(p, meta, changes[start : start + CHUNK_CHANGES])
            with writing_to(p):
                meta.offset = last_offset
                self.table[f"{META_PREFIX}{p}"] = meta.encode()

    async def _apply(self, p: int, meta: PartitionMeta, changes: list[Any]) -> None:
        with writing_to(p):
            outcome = apply_changes(self.table, changes, self.rules, meta.stream_ms)
            for key, raw in outcome.encoded.items():
                self.table[key] = raw
        for key, due in outcome.quiet_due.items():
            self.quiet.set(key, due)
        if outcome.max_ts is not None:
            meta.stream_ms = max(meta.stream_ms or outcome.max_ts, outcome.max_ts)
        self.metrics.processed.labels("inventory").inc(len(changes))
        for store_id, n in outcome.restocks.items():
            self.metrics.restocks.labels(self.metrics.store_label(store_id)).inc(n)
        await self._publish(outcome.transitions)
        await self._ebb()

    async def _ebb(self) -> None:
        """Each table write queues a changelog message; let the producer catch up before
        writing more (a million queued messages take gigabytes)."""
        buffer = self.app.producer.buffer
        while buffer.size > MAX_QUEUED_CHANGELOG:
            await buffer.flush_atmost(buffer.size - MAX_QUEUED_CHANGELOG)

    async def _publish(self, statuses: list[StockStatus]) -> None:
        for status in statuses:
            self._record(status)
        self._export_top({status.store_id for status in statuses})
        for status in statuses:
            for listener in self.listeners:
                try:
                    await listener(status)
                except Exception:
                    log.exception("inventory listener %r failed on %s", listener, status)

    def _record(self, status: StockStatus) -> None:
        """Index and gauges follow the status; counts a new stock-out."""
        before = self.index.get(status.store_id, status.sku)
        old = before.status if before is not None else Status.OK
        self.index.update(status)
        label = self.metrics.store_label(status.store_id)
        if status.status is Status.OUT and status.previous not in (None, Status.OUT):
            self.metrics.stockouts.labels(label).inc()
        if old is status.status:
            return
        for flag, delta in ((old, -1), (status.status, +1)):
            if flag is not Status.OK:
                self._flag_counts[label, flag] += delta
                self._gauge(flag).labels(label).set(self._flag_counts[label, flag])

    def _gauge(self, status: Status) -> Any:
        m = self.metrics
        if status is Status.SLOW:
            return m.slow_moving_skus
        return m.stock_out_skus if status is Status.OUT else m.low_stock_skus

    def _top_gauge(self, status: Status) -> Any:
        m = self.metrics
        return m.stock_out_top if status is Status.OUT else m.low_stock_top

    def _export_top(self, store_ids: set[str]) -> None:
        """The TOP_SKUS most urgent out and low SKUs of each store, the only gauges with a
        `sku` label (bounded by the store cap times TOP_SKUS). Stores past the cap share
        `other`, where one store's top would overwrite another's: not exported."""
        for store_id in store_ids:
            if self.metrics.store_label(store_id) == OTHER:
                continue
            for status in (Status.OUT, Status.LOW):
                top = self.index.flagged(store_id, (status,))[:TOP_SKUS]
                values = {
                    s.sku: float(s.available) if status is Status.OUT else s.minutes_to_stockout
                    for s in top
                }
                gauge = self._top_gauge(status)
                for sku in self._top_skus[store_id, status] - values.keys():
                    gauge.remove(store_id, sku)
                for sku, value in values.items():
                    gauge.labels(store_id, sku).set(math.inf if value is None else value)
                self._top_skus[store_id, status] = set(values)

    # --- the tick: loads new partitions; low keys recover as their partition's event
    # time moves on without their sales -----------------------------------------------
    async def tick(self) -> None:
        if self.app.rebalancing or self.app.in_recovery:
            return
        missing = self.assigned() - set(self.partitions)
        if missing:
            await self._load(missing)
        transitions = self._quiet_due_now()
        for low in self.index.all(Status.LOW):
            p = self.key_partition(low.store_id, low.sku)
            meta = self.partitions.get(p)
            now_ms = meta.stream_ms if meta is not None else None
            if now_ms is None or now_ms - low.ts < REEVALUATE_MS:
                continue
            key = f"{low.store_id}|{low.sku}"
            stored = self._reevaluate_stored(p, key, now_ms)
            if stored is None:
                continue
            state, transition = stored
            if transition is None:
                self.index.update(StockStatus.of(key, state, now_ms, self.rules, None))
                continue
            transitions.append(transition)
        await self._publish(transitions)
        # minutes to stock-out of the low keys changed with event time, transition or not
        self._export_top({low.store_id for low in self.index.all(Status.LOW)})

    def _quiet_due_now(self) -> list[StockStatus]:
        """Ok keys whose partition's event time passed their quiet due time: slow now."""
        transitions = []
        n = self.settings.partitions

        def stream_ms(key: str) -> int | None:
            meta = self.partitions.get(partition_for(key, n))
            return None if meta is None else meta.stream_ms

        for key in self.quiet.pop_due(self._latest_stream_ms(), stream_ms):
            now_ms = stream_ms(key)
            assert now_ms is not None
            stored = self._reevaluate_stored(partition_for(key, n), key, now_ms)
            if stored is not None and stored[1] is not None:
                transitions.append(stored[1])
        return transitions

    def _reevaluate_stored(
        self, p: int, key: str, now_ms: int
    ) -> tuple[StockState, StockStatus | None] | None:
        """A stored key's state and transition as of its partition's event time, written
        back if its status changed; an OK key keeps its quiet due time. None: not stored."""
        with writing_to(p):
            raw = self.table.get(key)
            if raw is None:
                return None
            state = StockState.decode(raw)
            transition = reevaluate(key, state, now_ms, self.rules)
            if transition is not None:
                self.table[key] = state.encode()
        if state.status is Status.OK:
            self.quiet.set(key, state.quiet_due_ms(self.rules))
        return state, transition

    def _latest_stream_ms(self) -> int:
        marks = [meta.stream_ms for meta in self.partitions.values() if meta.stream_ms is not None]
        return max(marks, default=-1)

    # --- reads for the HTTP API -----------------------------------------------------
    def lookup(self, store_id: str, sku: str) -> dict[str, Any] | None:
        """The state of one key on this worker, evaluated now; None if never seen."""
        key = f"{store_id}|{sku}"
        raw = self.table.get(key)
        if raw is None:
            return None
        state = StockState.decode(raw)
        meta = self.partitions.get(self.key_partition(store_id, sku))
        stream_ms = meta.stream_ms if meta is not None else None
        assert state.max_ts is not None
        now_ms = max(state.max_ts, stream_ms or state.max_ts)
        state.status = state.evaluate(now_ms, self.rules)
        body = StockStatus.of(key, state, now_ms, self.rules, None).to_dict()
        body.update(
            tracked=state.tracked,
            available=state.available if state.tracked else None,
            snapshot_ts=state.snapshot_ts,
            tracking_since_ts=state.start_ts if state.snapshot_ts is None else None,
            last_change_ts=state.max_ts,
            pending_changes=state.pending_count,
            inexact_snapshots=state.inexact_snapshots,
            last_inexact_snapshot_ts=state.inexact_ts,
        )
        return body

    def flagged(self, store_id: str, statuses: Sequence[Status]) -> list[StockStatus]:
        return self.index.flagged(store_id, statuses)
