"""Stage 2 on Faust: the agent over the routed-events topic, its state table and its clock tick.

Each batch is grouped by partition; each partition's state is loaded from the table on
first use after a rebalance, and each touched key is written once per batch.

All the state of a partition is one table (records of kinds w, s, o, d, m below), so its
writes reach Kafka in one changelog partition, in the order they were made: a worker killed
at any instant leaves a prefix of them. A batch writes its windows (each with a version: the
input offset it holds every event up to), its outbox (the stock changes it sends), its
orders, its dedup ids, then the watermark. A record whose content was sent goes only once
Kafka acknowledged the send: a closed window's once its partial was, an outbox entry's once
its changes were. So the worker that takes over restores every write up to some point,
including part of one batch, and replays the input from the last commit:
- a window takes a replayed event only past its version, whatever its batch wrote last;
- an order or a dedup id restored means the windows and the outbox of its batch were too
  (written before it), so an order event that changes nothing in a restored order changes
  nothing that is missing, and an event dropped as a duplicate lost nothing;
- restored outbox entries are sent again, and so are the partials of windows restored
  closed (the inventory agent drops a stock change it has by id, stage 3 a partial it
  merged);
- a restored watermark means the batch's other writes were restored too, and a window
  record gone means the watermark that closed it was kept: a replayed event is judged late
  only where it was the first time.
Tested by killing the stage at every point of its writes: tests/streams/funnel/test_crash.py.
"""

from __future__ import annotations

import asyncio
import functools
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


# The state table's kinds of record: "<kind>|<partition>|...", but orders "o|<order key>"
# (read by key, never scanned)
WINDOW, OUTBOX, ORDER, DEDUP, WATERMARK = "w", "s", "o", "d", "m"


class _Orders:
    """The state table's order records, under the keys FunnelPartition names them by."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: str) -> bytes | None:
        return self.table.get(f"{ORDER}|{key}")  # type: ignore[no-any-return]


class FunnelStage(BatchedStage):
    def __init__(self, app: faust.App, settings: Settings, topics: Topics, metrics: Metrics):
        super().__init__(app, settings)
        self.topics = topics
        self.metrics = metrics
        self.state_table = partitioned_table(app, "funnel-state", settings.partitions)
        self.partitions: dict[int, FunnelPartition] = {}
        # partition -> bucket -> keys (a set: a replayed batch may end where one restored did)
        self.dedup_keys: dict[int, dict[int, set[str]]] = {}
        # partition -> outbox records restored with it, to send again: (key, stock partition)
        self.unsent: dict[int, list[tuple[str, int, bytes]]] = {}
        # partition -> records whose sends Kafka has acknowledged: they go at the next write
        self.acknowledged: dict[int, list[str]] = defaultdict(list)
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
        self.unsent.clear()
        self.acknowledged.clear()

    def watermark_ms(self) -> int | None:
        """The lowest watermark of this worker's stage-2 partitions (None: none known)."""
        marks = [s.watermark.watermark_ms for s in self.partitions.values()]
        known = [mark for mark in marks if mark is not None]
        return min(known) if known else None

    # --- loading --------------------------------------------------------------------
    def partition_state(self, p: int) -> FunnelPartition:
        state = self.partitions.get(p)
        if state is None:
            events_topic = self.topics.events.get_topic_name()
            assigned = {tp.partition for tp in self.app.assignor.assigned_actives()
                        if tp.topic == events_topic}  # fmt: skip
            self._load({p} | assigned - self.partitions.keys())
            state = self.partitions[p]
        return state

    def _load(self, partitions: set[int]) -> None:
        """The state of `partitions` from the table, in one pass over it (it holds every
        order ever seen: one pass per partition took as many times as long)."""
        s = self.settings
        states = {p: FunnelPartition(p, s.window_ms, s.grace_ms, s.dedup_horizon_ms)
                  for p in partitions}  # fmt: skip
        for p, state in states.items():  # first: the watermark says which windows are closed
            raw_watermark = self.state_table.get(f"{WATERMARK}|{p}")
            if raw_watermark is not None:
                state.watermark.restore(orjson.loads(raw_watermark))
            self.dedup_keys[p] = defaultdict(set)
            self.unsent[p] = []
        for key, raw in list(self.state_table.items()):
            kind = key[0]
            if kind in (ORDER, WATERMARK):
                continue
            _, partition, *fields = key.split("|")
            p = int(partition)
            state = states.get(p)
            if state is None:
                continue
            if kind == WINDOW:
                version, aggregate = orjson.loads(raw)
                window = (fields[0], fields[1], int(fields[2]))
                state.restore_window(window, WindowAggregate.from_dict(aggregate), version)
            elif kind == DEDUP:
                on_time, late = orjson.loads(raw)
                state.dedup.restore(int(fields[0]), on_time, late)
                self.dedup_keys[p][int(fields[0])].add(key)
            elif kind == OUTBOX:
                self.unsent[p].append((key, int(fields[1]), raw))
        self.partitions |= states

    # --- the hot path ---------------------------------------------------------------
    async def process(self, batch: Sequence[EventT]) -> None:
        """A message holds a JSON array of routed events or a stage-1 watermark report."""
        by_partition: dict[int, list[tuple[int, Any]]] = defaultdict(list)
        for event in batch:
            message = event.message
            by_partition[message.partition].append((message.offset, orjson.loads(event.value)))
        wall_ms = _wall_ms()
        orders = _Orders(self.state_table)
        for p, items in by_partition.items():
            state = self.partition_state(p)
            closed_before = state.watermark.closed_before_ms
            outcome = BatchOutcome()
            events = 0
            for offset, item in items:  # in order: a report only affects the events after it
                if isinstance(item, dict):
                    state.watermark.report(item["marks"], item["inputs"], wall_ms)
                else:
                    state.apply(item, orders, outcome, offset)
                    events += len(item)
            with writing_to(p):
                outbox = self._persist_batch(p, state, outcome, items[-1][0])
                self._persist_progress(p, state)
                closed = self._close(p, state)
            await self._send_stock_changes(p, outbox)
            if closed or state.watermark.closed_before_ms != closed_before:
                await self._send_partials(p, state, closed)
            self._count(outcome)
            self.metrics.processed.labels("funnel").inc(events)

    def _persist_batch(
        self, p: int, state: FunnelPartition, outcome: BatchOutcome, offset: int
    ) -> list[tuple[str, int, bytes]]:
        """A batch's writes, in the order a replay relies on (the module's docstring);
        returns its outbox: (record key, stock partition, message)."""
        table = self.state_table
        for window in outcome.touched_windows:
            aggregate = state.windows.get(window)
            if aggregate is not None:
                version = state.version_written(window, offset)
                table[_window_record(p, window)] = orjson.dumps([version, aggregate.to_dict()])
        outbox = []
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for change in outcome.stock_changes:
            by_partition[partition_for(stock_key(change), self.settings.partitions)].append(change)
        for q, changes in by_partition.items():
            for n, (_, payload) in enumerate(fitting_chunks(changes, orjson.dumps)):
                key = f"{OUTBOX}|{p}|{offset}|{q}|{n}"
                table[key] = payload
                outbox.append((key, q, payload))
        for key, order in outcome.touched_orders.items():
            table[f"{ORDER}|{key}"] = order.encode()
        # the ids a batch added, under a key no other batch of the partition has: its last
        # offset (a worker-local counter would restart at 0 on the next owner and overwrite
        # the ids the previous owner stored)
        keys = self.dedup_keys.setdefault(p, defaultdict(set))
        for bucket, (on_time, late) in state.dedup.take_added().items():
            key = f"{DEDUP}|{p}|{bucket}|{offset}"
            table[key] = orjson.dumps([on_time, late])
            keys[bucket].add(key)
        return outbox

    def _persist_progress(self, p: int, state: FunnelPartition) -> None:
        """The watermark, after a batch's other writes; then the records whose sends Kafka
        acknowledged since the last write."""
        table = self.state_table
        if state.watermark.inputs:
            table[f"{WATERMARK}|{p}"] = orjson.dumps(state.watermark.saved())
        for key in self.acknowledged.pop(p, []):
            if key in table:
                del table[key]

    def _close(self, p: int, state: FunnelPartition) -> list[tuple[WindowKey, WindowAggregate]]:
        """Close the windows due; their records go once Kafka has their partials."""
        closed = state.close_due()
        table = self.state_table
        for window in state.take_emptied():
            if (key := _window_record(p, window)) in table:
                del table[key]
        if state.watermark.watermark_ms is not None:
            keys = self.dedup_keys.get(p, {})
            for bucket in state.dedup.expire(state.watermark.watermark_ms):
                for key in keys.pop(bucket, ()):
                    del table[key]
        return closed

    async def _send_stock_changes(self, p: int, outbox: list[tuple[str, int, bytes]]) -> None:
        """The batch's outbox, after any restored with the partition (sent again: the
        inventory agent drops a change it has by id)."""
        for key, q, payload in [*self.unsent.pop(p, []), *outbox]:
            await self._send(self.topics.stock, payload, q, p, [key])

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
            for part, payload in chunks[:-1]:
                await self._send(self.topics.partials, payload, q, p, _window_records(p, part))
            part = chunks[-1][0]
            last = {"source": p, "closed_before": closed_before, "partials": part}
            await self._send(
                self.topics.partials, orjson.dumps(last), q, p, _window_records(p, part)
            )

    async def _send(
        self, topic: TopicT, payload: bytes, partition: int, source: int, records: list[str]
    ) -> None:
        """Send; once Kafka acknowledges it, the `source` partition's `records` may go."""
        # Faust's send returns the delivery future (typed as any awaitable)
        delivery: asyncio.Future[Any] = await topic.send(value=payload, partition=partition)  # type: ignore[assignment]
        watch_delivery(delivery, topic.get_topic_name(), self.metrics.produce_errors)
        if records:
            delivery.add_done_callback(functools.partial(self._acknowledged, source, records))

    def _acknowledged(self, p: int, records: list[str], delivery: asyncio.Future[Any]) -> None:
        if not delivery.cancelled() and delivery.exception() is None:
            self.acknowledged[p].extend(records)

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
            p = tp.partition
            state = self.partition_state(p)
            state.watermark.advance(wall_ms)
            with writing_to(p):
                self._persist_progress(p, state)
                closed = self._close(p, state)
            await self._send_stock_changes(p, [])
            await self._send_partials(p, state, closed)


def _window_record(p: int, window: WindowKey) -> str:
    store_id, channel, start = window
    return f"{WINDOW}|{p}|{store_id}|{channel}|{start}"


def _window_records(p: int, partials: list[dict[str, Any]]) -> list[str]:
    return [
        _window_record(p, (part["store_id"], part["channel"], part["window_start"]))
        for part in partials
    ]
