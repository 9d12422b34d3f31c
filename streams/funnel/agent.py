"""Stage 2 on Faust: the agent over the routed-events topic, its tables and its clock tick.

Each batch is grouped by partition; each partition's state is loaded from its tables on
first use after a rebalance, and each touched key is written once per batch.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import faust
import orjson
from faust.types import EventT, TopicT

from streams.contract.events import TOPIC_TYPES
from streams.contract.routing import merge_partition, partition_for
from streams.eventtime import WindowKey
from streams.funnel.aggregates import WindowAggregate
from streams.funnel.partition import BatchOutcome, FunnelPartition, Outcome
from streams.inventory.changes import stock_key
from streams.runtime.delivery import fitting_chunks, watch_delivery
from streams.runtime.metrics import Metrics
from streams.runtime.settings import Settings
from streams.runtime.stage import BatchedStage
from streams.runtime.state import partitioned_table, writing_to
from streams.runtime.topics import Topics

__all__ = ["FunnelStage"]

TICK_S = 1.0


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class FunnelStage(BatchedStage):
    def __init__(self, app: faust.App, settings: Settings, topics: Topics, metrics: Metrics):
        super().__init__(app, settings)
        self.topics = topics
        self.metrics = metrics
        n = settings.partitions
        self.windows_table = partitioned_table(app, "funnel-windows", n)
        self.orders_table = partitioned_table(app, "funnel-orders", n)
        self.dedup_table = partitioned_table(app, "funnel-dedup", n)
        self.watermark_table = partitioned_table(app, "funnel-watermark", n)
        self.partitions: dict[int, FunnelPartition] = {}
        self.dedup_keys: dict[int, dict[int, list[str]]] = {}  # partition -> bucket -> keys
        self.type_topic = {
            event_type: settings.input_topic(kind)
            for kind, types in TOPIC_TYPES.items()
            for event_type in types
        }

    def register(self) -> None:
        self.register_agent(self.topics.events, "funnel")
        self.app.timer(TICK_S, name="funnel-tick")(self.tick)

    def forget_partitions(self) -> None:
        self.partitions.clear()
        self.dedup_keys.clear()

    def watermark_ms(self) -> int | None:
        """The lowest watermark of this worker's stage-2 partitions (None: none known)."""
        marks = [s.watermark.watermark_ms for s in self.partitions.values()]
        known = [mark for mark in marks if mark is not None]
        return min(known) if known else None

    def input_stream_time(self, name: str) -> int | None:
        """The largest ts stage 1 last reported for an input partition, as heard here."""
        heard = [s.watermark.inputs[name][0] for s in self.partitions.values()
                 if name in s.watermark.inputs]  # fmt: skip
        known = [ts for ts in heard if ts is not None]
        return max(known) if known else None

    # --- loading --------------------------------------------------------------------
    def partition_state(self, p: int) -> FunnelPartition:
        state = self.partitions.get(p)
        if state is None:
            state = self.partitions[p] = self._load(p)
        return state

    def _load(self, p: int) -> FunnelPartition:
        s = self.settings
        state = FunnelPartition(p, s.window_ms, s.grace_ms, s.dedup_horizon_ms)
        raw_watermark = self.watermark_table.get(str(p))
        if raw_watermark is not None:
            state.watermark.restore(orjson.loads(raw_watermark))
        prefix = f"{p}|"
        for key, raw in list(self.windows_table.items()):
            if key.startswith(prefix):
                _, store_id, channel, start = key.split("|")
                state.windows[store_id, channel, int(start)] = WindowAggregate.from_dict(
                    orjson.loads(raw)
                )
        buckets: dict[int, list[str]] = defaultdict(list)
        for key, raw in list(self.dedup_table.items()):
            if key.startswith(prefix):
                bucket = int(key.split("|")[1])
                on_time, late = orjson.loads(raw)
                state.dedup.restore(bucket, on_time, late)
                buckets[bucket].append(key)
        self.dedup_keys[p] = buckets
        return state

    # --- the hot path ---------------------------------------------------------------
    async def process(self, batch: Sequence[EventT]) -> None:
        """A message holds a JSON array of routed events or a stage-1 watermark report."""
        by_partition: dict[int, list[Any]] = defaultdict(list)
        last_offset: dict[int, int] = {}
        for event in batch:
            by_partition[event.message.partition].append(orjson.loads(event.value))
            last_offset[event.message.partition] = event.message.offset
        wall_ms = _wall_ms()
        for p, items in by_partition.items():
            state = self.partition_state(p)
            closed_before = state.watermark.closed_before_ms
            outcome = BatchOutcome()
            events = 0
            for item in items:  # in order: a report only affects the events after it
                if isinstance(item, dict):
                    state.watermark.report(item["marks"], item["inputs"], wall_ms)
                else:
                    state.apply(item, self.orders_table, outcome)
                    events += len(item)
            with writing_to(p):
                self._persist(p, state, outcome)
                self._persist_dedup(p, state, last_offset[p])
                closed = self._close(p, state)
            await self._send_stock_changes(outcome)
            if closed or state.watermark.closed_before_ms != closed_before:
                await self._send_partials(p, state, closed)
            self._count(outcome)
            self.metrics.processed.labels("funnel").inc(events)

    def _persist(self, p: int, state: FunnelPartition, outcome: BatchOutcome) -> None:
        for store_id, channel, start in outcome.touched_windows:
            aggregate = state.windows.get((store_id, channel, start))
            if aggregate is not None:
                key = f"{p}|{store_id}|{channel}|{start}"
                self.windows_table[key] = orjson.dumps(aggregate.to_dict())
        for key, order in outcome.touched_orders.items():
            self.orders_table[key] = order.encode()
        if state.watermark.inputs:
            self.watermark_table[str(p)] = orjson.dumps(state.watermark.saved())

    def _persist_dedup(self, p: int, state: FunnelPartition, batch_offset: int) -> None:
        """The ids a batch added, under a key no other batch of the partition has: its last
        offset (a worker-local counter would restart at 0 on the next owner and overwrite
        the ids the previous owner stored)."""
        keys = self.dedup_keys.setdefault(p, defaultdict(list))
        for bucket, (on_time, late) in state.dedup.take_added().items():
            key = f"{p}|{bucket}|{batch_offset}"
            self.dedup_table[key] = orjson.dumps([on_time, late])
            keys[bucket].append(key)

    def _close(self, p: int, state: FunnelPartition) -> list[tuple[WindowKey, WindowAggregate]]:
        closed = state.close_due()
        for store_id, channel, start in (key for key, _ in closed):
            del self.windows_table[f"{p}|{store_id}|{channel}|{start}"]
        if state.watermark.watermark_ms is not None:
            keys = self.dedup_keys.get(p, {})
            for bucket in state.dedup.expire(state.watermark.watermark_ms):
                for key in keys.pop(bucket, []):
                    del self.dedup_table[key]
        return closed

    async def _send_stock_changes(self, outcome: BatchOutcome) -> None:
        if not outcome.stock_changes:
            return
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for change in outcome.stock_changes:
            by_partition[partition_for(stock_key(change), self.settings.partitions)].append(change)
        for q, changes in by_partition.items():
            for _, payload in fitting_chunks(changes, orjson.dumps):
                await self._send(self.topics.stock, payload, q)

    async def _send_partials(
        self, p: int, state: FunnelPartition, closed: list[tuple[WindowKey, WindowAggregate]]
    ) -> None:
        """Closed partials to the stage-3 partition of their store, and a watermark to every
        stage-3 partition, after the partials: in the same message, or in the last one when
        they need several (stage 3 moves its frontier on a message with `closed_before` only,
        so never before it has every partial that watermark closed)."""
        by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for (store_id, channel, start), aggregate in closed:
            q = merge_partition(store_id, self.settings.partitions)
            by_partition[q].append(
                {"store_id": store_id, "channel": channel, "window_start": start,
                 "agg": aggregate.to_dict()}
            )  # fmt: skip
        closed_before = state.watermark.closed_before_ms
        for q in range(self.settings.partitions):
            chunks = list(
                fitting_chunks(
                    by_partition.get(q, []),
                    lambda part: orjson.dumps({"source": p, "partials": part}),
                )
            )
            for _, payload in chunks[:-1]:
                await self._send(self.topics.partials, payload, q)
            last = {"source": p, "closed_before": closed_before, "partials": chunks[-1][0]}
            await self._send(self.topics.partials, orjson.dumps(last), q)

    async def _send(self, topic: TopicT, payload: bytes, partition: int) -> None:
        delivery = await topic.send(value=payload, partition=partition)
        watch_delivery(delivery, topic.get_topic_name(), self.metrics.produce_errors)

    def _count(self, outcome: BatchOutcome) -> None:
        m = self.metrics
        store, channel = m.store_label, m.channel_label
        for (store_id, ch, stage), n in outcome.funnel.items():
            m.funnel_events.labels(store(store_id), channel(ch), stage).inc(n)
        for (store_id, ch, currency), amount in outcome.gmv.items():
            m.gmv.labels(store(store_id), channel(ch), currency).inc(float(amount))
        for (store_id, ch, currency), n in outcome.paid_orders.items():
            m.paid_orders.labels(store(store_id), channel(ch), currency).inc(n)
        for (store_id, source, stage), n in outcome.sources.items():
            m.traffic_events.labels(store(store_id), m.source_label(source), stage).inc(n)
        for (store_id, category, stage), n in outcome.categories.items():
            m.category_events.labels(store(store_id), m.category_label(category), stage).inc(n)
        for (event_type, result), n in outcome.outcomes.items():
            topic = self.type_topic[event_type]
            m.event_outcomes.labels(topic, result.value).inc(n)
            if result is Outcome.DUPLICATE:
                m.duplicates.labels(topic).inc(n)
            elif result is Outcome.LATE:
                m.late_events.labels(topic).inc(n)

    # --- the clock tick: quiet inputs advance by the wall clock; stage 3 hears from all --
    async def tick(self) -> None:
        if self.app.rebalancing or self.app.in_recovery:
            return
        async with self.lock:
            await self._tick()

    async def _tick(self) -> None:
        events_topic = self.topics.events.get_topic_name()
        wall_ms = _wall_ms()
        watermark = self.watermark_ms()
        if watermark is not None:
            self.metrics.watermark.set(watermark / 1000)
        for tp in self.app.assignor.assigned_actives():
            if tp.topic != events_topic:
                continue
            state = self.partition_state(tp.partition)
            state.watermark.advance(wall_ms)
            with writing_to(tp.partition):
                self._persist(tp.partition, state, BatchOutcome())
                closed = self._close(tp.partition, state)
            await self._send_partials(tp.partition, state, closed)
