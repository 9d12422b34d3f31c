"""Stage 3 on Faust: the agent over the partials topic; emits each final window once to
`salewatch.windows`, updates the window gauges and tells the window listeners (detectors)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
import orjson
from faust.types import EventT

from streams.contract.routing import merge_partition
from streams.eventtime import WindowKey
from streams.funnel.aggregates import STAGES, WindowAggregate
from streams.merge.buyers import BuyerCounts, BuyerHistory
from streams.merge.emitted import windows_since
from streams.merge.partition import MergePartition, Spend, window_key, window_record
from streams.runtime.delivery import watch_delivery
from streams.runtime.metrics import Metrics
from streams.runtime.settings import Settings
from streams.runtime.stage import BatchedStage
from streams.runtime.state import partitioned_table, writing_to
from streams.runtime.topics import Topics

__all__ = ["FrontierListener", "MergeStage", "SpendSource", "WindowListener"]

log = logging.getLogger(__name__)

# how far before a saved mark the windows topic is read back on a restore: the records'
# times and the mark's come from one worker's clock, this covers a step of that clock
CLOCK_SLACK_MS = 10_000

PENDING, MARK = "w", "m"  # the kinds of record in the state table

# called with each final window record, once
WindowListener = Callable[[dict[str, Any]], Awaitable[None]]
# the campaign spend of (store, channel, window start, window end), None if unknown: the
# calendar's, wired by the app (alerts/campaign.py)
SpendSource = Callable[[str, str, int, int], Spend | None]
# called with (stage-3 partition, frontier) when every window starting before the frontier
# is final there: a store x channel with no window in between had no events at all
FrontierListener = Callable[[int, int], Awaitable[None]]


class MergeStage(BatchedStage):
    def __init__(self, app: faust.App, settings: Settings, topics: Topics, metrics: Metrics):
        super().__init__(app, settings)
        self.topics = topics
        self.metrics = metrics
        # One table (one changelog partition per stage-3 partition, written in order, so a
        # kill keeps a prefix of its writes): pending partials "w|<store>|<channel>|<start>"
        # and each partition's mark "m|<partition>". The mark goes before the pending
        # partials of the windows it makes final are dropped: a window whose partials are
        # gone is one the mark restored says is final and lists until Kafka has it.
        self.state_table = partitioned_table(app, "merge-state", settings.partitions)
        self.buyers = BuyerHistory(
            partitioned_table(app, "merge-buyers", settings.partitions),
            settings.buyer_lookback_ms,
        )
        self.partitions: dict[int, MergePartition] = {}
        self.listeners: list[WindowListener] = []
        self.frontier_listeners: list[FrontierListener] = []
        self.spend_of: SpendSource = _no_spend
        # recent final windows per store x channel, for the HTTP API
        self.recent: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)

    def register(self) -> None:
        self.register_agent(self.topics.partials, "merge")

    def forget_partitions(self) -> None:
        self.partitions.clear()

    async def _restore(self, partitions: Sequence[int]) -> None:
        """Load each partition's state from the tables, then make the windows topic agree
        with it. The mark that a window was emitted is a table write and the window a
        separate send, so a crash can keep either one alone: windows the mark lists as not
        acknowledged and the topic lacks are sent again, and windows on the topic that the
        state has not marked emitted are not emitted a second time."""
        saved = {q: self._load(q) for q in partitions}
        since = [mark["since_ms"] for mark in saved.values() if mark and "since_ms" in mark]
        if not since:
            return
        started = time.monotonic()
        out = await windows_since(
            self.settings.kafka_bootstrap,
            self.settings.kafka_security,
            self.topics.windows.get_topic_name(),
            min(since) - CLOCK_SLACK_MS,
        )
        if out is None:
            return  # logged; the mark's windows stay unchecked
        log.info(
            "merge partitions %s restored: %d windows read back in %.2f s",
            sorted(partitions), len(out), time.monotonic() - started,
        )  # fmt: skip
        n = self.settings.partitions
        for q, mark in saved.items():
            state = self.partitions[q]
            state.already_out = {
                key
                for key in out
                if merge_partition(key[0], n) == q
                and (state.final_before is None or key[2] >= state.final_before)
            }
            unsent = (mark or {}).get("unsent", [])
            lost = [record for record in unsent if window_key(record) not in out]
            if lost:
                log.warning(
                    "merge partition %d: %d final windows were marked emitted but never "
                    "reached %s (a crash): sending them again",
                    q, len(lost), self.topics.windows.get_topic_name(),
                )  # fmt: skip
            now = int(time.time() * 1000)
            for record in lost:
                state.unsent[window_key(record)] = (record, now)  # the next mark lists it again
                await self._emit(state, record)

    def _load(self, q: int) -> dict[str, Any] | None:
        """The partition's state from the tables, kept in `partitions`; returns its saved
        mark (None on its first batch ever)."""
        n = self.settings.partitions
        state = self.partitions[q] = MergePartition(
            q, n, keep_emitted_ms=self.settings.dedup_horizon_ms
        )
        raw = self.state_table.get(f"{MARK}|{q}")
        mark = None if raw is None else orjson.loads(raw)
        if mark is not None:
            state.final_before = mark["final_before"]
            state.closed_before = {int(p): c for p, c in mark["sources"].items()}
        final_before = state.final_before
        for key, value in list(self.state_table.items()):
            if not key.startswith(f"{PENDING}|"):
                continue
            _, store_id, channel, start = key.split("|")
            if merge_partition(store_id, n) != q:
                continue
            if final_before is not None and int(start) < final_before:
                with writing_to(q):  # final: the kill came before its drop was written
                    del self.state_table[key]
                continue
            partials = orjson.loads(value)
            state.pending[store_id, channel, int(start)] = {
                int(p): agg for p, agg in partials.items()
            }
        return mark

    async def process(self, batch: Sequence[EventT]) -> None:
        by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for event in batch:
            by_partition[event.message.partition].append(orjson.loads(event.value))
        await self._restore([q for q in by_partition if q not in self.partitions])
        for q, messages in by_partition.items():
            state = self.partitions[q]
            frontier_before = state.final_before
            touched: set[WindowKey] = set()
            for message in messages:
                touched |= state.add(message)
            self._report_missed(state)
            final = state.finalize()
            with writing_to(q):
                buyers = self.buyers.classify(final)
                records = [
                    self._record(key, aggregate, buyers.get(key, BuyerCounts()))
                    for key, aggregate in final
                    if key not in state.already_out
                ]
                state.already_out -= {key for key, _ in final}
                now = int(time.time() * 1000)
                state.unsent.update((window_key(record), (record, now)) for record in records)
                self._persist(state, touched, final, now)
            for record in records:
                await self._emit(state, record)
            if state.final_before is not None and state.final_before != frontier_before:
                for frontier_listener in self.frontier_listeners:
                    await frontier_listener(q, state.final_before)

    def _report_missed(self, state: MergePartition) -> None:
        for (store_id, channel, start), source, events in state.missed:
            log.error(
                "merge partition %d: partial of window %s|%s|%d from funnel partition %d came "
                "after the window was emitted without it: %d events unaccounted",
                state.partition, store_id, channel, start, source, events,
            )  # fmt: skip
            self.metrics.unaccounted.labels("merge").inc(events)
        state.missed.clear()

    def _persist(
        self,
        state: MergePartition,
        touched: set[WindowKey],
        final: list[tuple[WindowKey, WindowAggregate]],
        now: int,
    ) -> None:
        table = self.state_table
        for key in touched:
            if key in state.pending:
                table[_pending_key(key)] = orjson.dumps(
                    {str(p): agg for p, agg in state.pending[key].items()}
                )
        # The mark: what is final, and the windows not acknowledged yet. A restore reads the
        # windows topic back from the earliest of those and of this moment.
        table[f"{MARK}|{state.partition}"] = orjson.dumps(
            {
                "final_before": state.final_before,
                "sources": {str(p): mark for p, mark in state.closed_before.items()},
                "unsent": [record for record, _ in state.unsent.values()],
                "since_ms": min([now, *(at for _, at in state.unsent.values())]),
            }
        )
        for key, _ in final:  # after the mark (the table's comment in __init__)
            table.pop(_pending_key(key), None)

    def _record(
        self, key: WindowKey, aggregate: WindowAggregate, buyers: BuyerCounts
    ) -> dict[str, Any]:
        store_id, channel, start = key
        spend = self.spend_of(store_id, channel, start, start + self.settings.window_ms)
        return window_record(key, self.settings.window_ms, aggregate, buyers, spend)

    async def _emit(self, state: MergePartition, record: dict[str, Any]) -> None:
        key = window_key(record)
        # Queued behind this batch's table writes (the mark), in the same buffer: sent
        # directly, a window would overtake its mark and a crash in between would emit it
        # again on restart. The other way round, the mark lists it until Kafka has it.
        delivery = self.topics.windows.send_soon(key=f"{key[0]}|{key[1]}".encode(),
                                                 value=orjson.dumps(record))  # fmt: skip
        watch_delivery(delivery, self.topics.windows.get_topic_name(), self.metrics.produce_errors)

        def acknowledged(future: asyncio.Future[Any]) -> None:
            if not future.cancelled() and future.exception() is None:
                state.unsent.pop(key, None)

        delivery.add_done_callback(acknowledged)
        recent = self.recent[key[0], key[1]]
        recent.append(record)
        del recent[: -self.settings.recent_windows]
        self._count(record)
        for listener in self.listeners:
            await listener(record)

    def _count(self, record: dict[str, Any]) -> None:
        m = self.metrics
        store = m.store_label(record["store_id"])
        channel = m.channel_label(record["channel"])
        for stage in STAGES:
            m.window_users.labels(store, channel, stage).set(record["users"][stage])
        for stage, ratio in record["conversion"].items():
            if ratio is not None:
                m.conversion.labels(store, channel, stage).set(ratio)
        m.payment_failures.labels(store, channel).inc(record["payment_failed"])
        m.refund_requests.labels(store, channel).inc(record["refund_requested"])
        m.refund_amount.labels(store, channel).inc(float(record["refund_amount"]))
        m.returns.labels(store, channel).inc(record["returns"])
        m.complaints.labels(store, channel).inc(record["complaints"])
        m.buyers.labels(store, channel, "new").inc(record["new_buyers"])
        m.buyers.labels(store, channel, "returning").inc(record["returning_buyers"])
        for currency, amount in (record["spend"] or {}).items():
            m.campaign_spend.labels(store, channel, currency).inc(float(amount))
        for gauge, ratio in (
            (m.payment_failure_ratio, record["payment_failure_rate"]),
            (m.refund_ratio, record["refund_rate"]),
            (m.visit_depth, record["visit_depth"]),
            (m.repurchase_ratio, record["repurchase_rate"]),
            (m.aftersales_ratio, record["aftersales_rate"]),
            (m.complaint_ratio, record["complaint_rate"]),
        ):
            if ratio is not None:
                gauge.labels(store, channel).set(ratio)
        m.windows_closed.inc()


def _pending_key(key: WindowKey) -> str:
    store_id, channel, start = key
    return f"{PENDING}|{store_id}|{channel}|{start}"


def _no_spend(store_id: str, channel: str, start_ms: int, end_ms: int) -> Spend | None:
    return None
