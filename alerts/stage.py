"""The alert stage on Faust: detectors hooked into stage 3 and the inventory stage, alert
state in changelog-backed tables, the Alertmanager notifier, GET /api/alerts and metrics.

State, per stage partition (written inside that partition, so it moves with it):
- `alerts-firing`: `<partition>|<identity>` -> the alert (alerts.lifecycle.Alert), an
  outbox written straight to Kafka (`DirectTable`, not behind Faust's producer queue): a
  change is written here first, published to the alerts topic by `publish_forever` once
  Kafka acknowledged the write, marked published once the topic acknowledged it, then sent
  to Alertmanager. A resolution stays until delivered (Alertmanager answered it, or without
  one, the topic acknowledged it). Partitions are loaded when assigned: their firing alerts
  are re-sent to Alertmanager, and what is not marked published is published (at least
  once, never lost). Without the kept resolutions, a worker killed while Alertmanager was
  away took a resolution queued in memory with it, and Alertmanager showed the alert firing
  until its `endsAt` (4 re-send intervals: 4 minutes by default).
- `alerts-detectors`: `<partition>|c|<store>|<channel>` and `<partition>|s|<store>` -> the
  window detectors of a key (baselines, hysteresis), so a restart needs no warm-up.

Window alerts belong to the stage-3 partition of their store, stock alerts to the inventory
partition of their store x SKU (both topics have `SALEWATCH_PARTITIONS` partitions and are
co-assigned, so one worker owns partition p of both and of these tables).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import faust
import orjson
from faust.types.tuples import FutureMessage
from faust.web import Request, Response, View

from alerts.campaign import calendar_of
from alerts.clock import wall_ms
from alerts.detectors import ChannelDetector, Signal, StoreDetector, stock_signals
from alerts.evaluation import Advance, FunnelEvaluator, Witness
from alerts.fleet import FleetRates
from alerts.lifecycle import Alert, AlertBook, Update
from alerts.notifier import AlertmanagerNotifier
from streams.contract.routing import merge_partition
from streams.inventory.agent import InventoryStage
from streams.inventory.stock import StockStatus
from streams.merge.agent import MergeStage
from streams.runtime.metrics import Metrics
from streams.runtime.repeated_logs import EVERY_TIME
from streams.runtime.settings import Settings
from streams.runtime.state import direct_table, partitioned_table, writing_to
from streams.runtime.topics import Topics

__all__ = ["AlertStage"]

log = logging.getLogger(__name__)

TICK_S = 1.0
STOCK_ALERTS = ("StockOut", "LowStockSoon")


class Change:
    """An alert state to publish, as it was when decided (another task may move the alert
    on while this one waits for Kafka)."""

    def __init__(self, alert: Alert) -> None:
        self.alert = alert
        self.status = alert.status
        self.encoded = alert.encode()
        self.record = orjson.dumps(alert.record())

    def unchanged(self) -> bool:
        return self.alert.encode() == self.encoded


class AlertStage:
    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        topics: Topics,
        metrics: Metrics,
        merge: MergeStage,
        inventory: InventoryStage | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.topics = topics
        self.metrics = metrics
        self.merge = merge
        self.inventory = inventory
        self.calendar = calendar_of(settings)
        n = settings.partitions
        self.firing_table = direct_table(app, "alerts-firing", n)
        self.detectors_table = partitioned_table(app, "alerts-detectors", n)
        self.book = AlertBook(settings.grafana_url)
        url, resend_s = settings.alertmanager_url, settings.alert_resend_s
        self.notifier = (
            AlertmanagerNotifier(url, metrics, resend_s=resend_s) if url is not None else None
        )
        if self.notifier is not None:
            self.notifier.on_resolved_delivered = self._forget_resolved
        self.evaluators: dict[int, FunnelEvaluator] = {}
        self.witness = Witness()  # windows in which any store on this worker had events
        self.fleet = FleetRates()  # the baselines of this worker's stores (alerts.fleet)
        self.loaded: set[int] = set()  # partitions whose firing alerts are in the book
        # changes to publish, each with the sends of its table records (_commit)
        self._outbox: asyncio.Queue[tuple[list[FutureMessage], list[Change]]] = asyncio.Queue()
        self._gauge_labels: set[tuple[str, str]] = set()

    def register(self) -> None:
        self.merge.listeners.append(self.on_window)
        self.merge.frontier_listeners.append(self.on_frontier)
        if self.inventory is not None:
            self.inventory.listeners.append(self.on_stock)
        self.app.timer(TICK_S, name="alerts-tick")(self.tick)
        self.app.task(self.publish_forever)
        self.app.on_partitions_revoked.connect(self._forget_partitions)
        if self.notifier is not None:
            self.app.task(self.notifier.run)
        self._register_api()

    # --- partitions -----------------------------------------------------------------------
    @property
    def changelog_topic(self) -> str:
        return self.firing_table.changelog_topic.get_topic_name()  # type: ignore[no-any-return]

    def assigned(self) -> set[int]:
        topic = self.changelog_topic
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    async def _forget_partitions(self, *args: Any, **kwargs: Any) -> None:
        self.evaluators.clear()
        self.fleet = FleetRates()  # the stores of the partitions kept are restored again
        self.loaded.clear()
        self.book.forget()
        if self.notifier is not None:
            self.notifier.drop_firing()
        self._update_gauges()

    def _evaluator(self, q: int) -> FunnelEvaluator:
        evaluator = self.evaluators.get(q)
        if evaluator is None:
            evaluator = FunnelEvaluator(
                q, self.settings.window_ms, self.calendar, self.witness, self.fleet
            )
            channels, stores = [], []
            prefix = f"{q}|"
            for key, raw in list(self.detectors_table.items()):
                if key.startswith(prefix):
                    data = orjson.loads(raw)
                    if key.split("|", 2)[1] == "c":
                        channels.append(ChannelDetector.from_json(data))
                    else:
                        stores.append(StoreDetector.from_json(data))
            evaluator.restore(channels, stores)
            self.evaluators[q] = evaluator
        return evaluator

    async def _load(self, q: int) -> None:
        """Put partition q's firing alerts in the book, they are re-sent from there; publish
        the stored changes not marked published (the worker before died between the table
        and the topic) and send the resolutions Alertmanager has not answered again."""
        if q in self.loaded:
            return
        self.loaded.add(q)
        prefix = f"{q}|"
        stored = [
            Alert.decode(raw)
            for key, raw in list(self.firing_table.items())
            if key.startswith(prefix)
        ]
        firing = [alert for alert in stored if alert.firing]
        resolved = [alert for alert in stored if not alert.firing]
        unpublished = [Change(alert) for alert in stored if not alert.published]
        self.book.restore(firing)
        if stored:
            log.info("alerts: partition %d has %d firing alerts and %d resolutions to deliver,"
                     " %d not on the alerts topic yet", q, len(firing), len(resolved),
                     len(unpublished))  # fmt: skip
        if unpublished:
            self._outbox.put_nowait(([], unpublished))
        if self.notifier is not None:
            self.notifier.submit(resolved)  # the firing ones are re-sent from the book
        else:
            await self._forget_resolved([alert for alert in resolved if alert.published])
        await self._reconcile_stock(q, [a for a in firing if a.alertname in STOCK_ALERTS])
        self._update_gauges()

    async def _reconcile_stock(self, q: int, alerts: list[Alert]) -> None:
        """Stock alerts whose SKU recovered while no one owned the partition resolve now
        (the inventory stage announces only keys that are low or out after a load)."""
        if self.inventory is None or not alerts:
            return
        update = Update()
        for alert in alerts:
            store_id, sku = alert.labels["store_id"], alert.labels["sku"]
            body = self.inventory.lookup(store_id, sku)
            if body is not None:
                update.extend(self._apply(self._stock_signals(StockStatus.from_dict(body)), q))
            else:
                labels = {"store_id": store_id, "sku": sku}
                gone = Signal(alertname=alert.alertname, labels=labels, firing=False,
                              event_ms=alert.event_starts_ms)  # fmt: skip
                update.extend(self._apply([gone], q))
        await self._commit(update)

    # --- inputs -----------------------------------------------------------------------------
    async def on_window(self, record: dict[str, Any]) -> None:
        try:
            q = merge_partition(record["store_id"], self.settings.partitions)
            self._evaluator(q).add(record)
        except Exception:  # an alerting bug must never stop stage 3
            log.exception("alerts: cannot take window %r", record)

    async def on_frontier(self, q: int, frontier_ms: int) -> None:
        try:
            await self._load(q)
            evaluator = self._evaluator(q)
            advance = evaluator.advance(frontier_ms)
            update = self._apply(advance.signals, q)
            with writing_to(q):
                self._store_detectors(q, evaluator, advance)
            await self._commit(update)
        except Exception:  # an alerting bug must never stop stage 3
            log.exception("alerts: window detectors of partition %d failed", q)

    async def on_stock(self, status: StockStatus) -> None:
        if self.inventory is None:
            return
        q = self.inventory.key_partition(status.store_id, status.sku)
        await self._load(q)
        await self._commit(self._apply(self._stock_signals(status), q))

    def _stock_signals(self, status: StockStatus) -> list[Signal]:
        t = self.calendar.thresholds(status.store_id, "", status.ts, status.ts + 1)
        return stock_signals(status, t)

    # --- the clock: held resolutions, re-sends, partitions to load ---------------------------
    async def tick(self) -> None:
        if self.app.rebalancing or self.app.in_recovery:
            return
        for q in sorted(self.assigned() - self.loaded):
            await self._load(q)
        now_ms = wall_ms()
        await self._commit(self.book.due(now_ms))
        if self.notifier is not None:
            self.notifier.resend(self.book.active.values(), now_ms)
        self._export_calendar(now_ms)

    def _export_calendar(self, now_ms: int) -> None:
        """The sale's start and running phases, for the war room's totals and annotations."""
        self.metrics.sale_start.set(self.calendar.sale_start_ms(now_ms) / 1000)
        for name, running in self.calendar.phases_running(now_ms).items():
            self.metrics.campaign_phase.labels(name).set(1 if running else 0)

    # --- state changes ------------------------------------------------------------------------
    def _apply(self, signals: Iterable[Signal], q: int) -> Update:
        update = Update()
        now_ms = wall_ms()
        for signal in signals:
            update.extend(self.book.apply(signal, q, now_ms))
        return update

    def _store_detectors(self, q: int, evaluator: FunnelEvaluator, advance: Advance) -> None:
        table = self.detectors_table
        for store_id, channel in advance.channels - advance.forgotten_channels:
            detector = evaluator.channels[store_id, channel]
            table[f"{q}|c|{store_id}|{channel}"] = orjson.dumps(detector.to_json())
        for store_id, channel in advance.forgotten_channels:
            table.pop(f"{q}|c|{store_id}|{channel}", None)
        for store_id in advance.stores - advance.forgotten_stores:
            table[f"{q}|s|{store_id}"] = orjson.dumps(evaluator.stores[store_id].to_json())
        for store_id in advance.forgotten_stores:
            table.pop(f"{q}|s|{store_id}", None)

    async def _commit(self, update: Update) -> None:
        """Hand the changes' table records to Kafka, then queue the changes for the
        publisher (`publish_forever`), which publishes them once Kafka acknowledged those
        records: a worker killed at any moment leaves its successor a table that knows every
        alert it published or was about to (`_load` publishes the latter). The caller does
        not wait for the acknowledgements: a batch that fires twenty alerts would wait for
        forty, one after another. Faust's flush before a commit of the input offsets
        includes the records handed over here."""
        # as decided: another task may move these alerts on meanwhile
        records = [(alert.partition, self._key(alert), alert.encode()) for alert in update.stored]
        changes = [Change(alert) for alert in update.published]
        stored = [await self.firing_table.put(*record) for record in records]
        if changes:
            self._outbox.put_nowait((stored, changes))
            self._update_gauges()

    async def publish_forever(self) -> None:
        """Publish queued changes once their table records are acknowledged: all those
        waiting at once, so a burst costs two acknowledgements, not two per change.
        Published first, a change whose table record a kill lost stayed firing on the topic
        for good once the successor, replaying the same events in other batches, never
        repeated it."""
        while True:
            queued = [await self._outbox.get()]
            while not self._outbox.empty():
                queued.append(self._outbox.get_nowait())
            stored = [sent for table_writes, _ in queued for sent in table_writes]
            changes = [change for _, batch in queued for change in batch]
            try:
                await asyncio.gather(*stored)
            except Exception:  # Faust's producer fails the worker; the alert must still out
                log.exception("alerts: table records not acknowledged; publishing anyway")
            for change in changes:
                alert = change.alert
                log.warning(
                    "alert %s %s %s: %s",
                    change.status, alert.alertname, alert.identity, alert.annotations["summary"],
                    extra=EVERY_TIME,
                )  # fmt: skip
            try:
                await self._publish(changes)
            except Exception:  # unmarked in the table: the next owner publishes them
                log.exception("alerts: %d changes not published", len(changes))

    async def _publish(self, changes: list[Change]) -> None:
        """To the alerts topic (acknowledged, then marked published in the table), then to
        Alertmanager. A resolution's table record goes once delivered (_forget_resolved)."""
        topic = self.topics.alerts
        sent = [
            await topic.send(key=change.alert.fingerprint.encode(), value=change.record)
            for change in changes
        ]
        try:
            await asyncio.gather(*sent)
        except Exception:
            log.exception("alerts: the alerts topic did not acknowledge %d records", len(sent))
            return  # unmarked: the next owner of the partition publishes them again
        marked = [c.alert for c in changes if c.unchanged() and c.alert.partition in self.loaded]
        for alert in marked:  # no wait: a kill before this write repeats the record, no more
            alert.published = True
            await self.firing_table.put(alert.partition, self._key(alert), alert.encode())
        if self.notifier is not None:
            self.notifier.submit(change.alert for change in changes)
        else:
            await self._forget_resolved([alert for alert in marked if not alert.firing])

    async def _forget_resolved(self, delivered: list[Alert]) -> None:
        """These resolutions were delivered: their table records go, unless the alert
        changed since (fired again) or its partition is no longer ours."""
        for alert in delivered:
            key = self._key(alert)
            if alert.partition in self.loaded and self.firing_table.get(key) == alert.encode():
                await self.firing_table.put(alert.partition, key, None)

    @staticmethod
    def _key(alert: Alert) -> str:
        return f"{alert.partition}|{alert.identity}"

    def _update_gauges(self) -> None:
        counts = self.book.firing_counts()
        self._gauge_labels |= set(counts)
        for alertname, severity in self._gauge_labels:
            self.metrics.alerts_firing.labels(alertname, severity).set(
                counts.get((alertname, severity), 0)
            )

    # --- HTTP -------------------------------------------------------------------------------
    def snapshot(self, filters: dict[str, str]) -> dict[str, Any]:
        """GET /api/alerts: firing and recently resolved alerts on this worker."""

        def wanted(alert: Alert) -> bool:
            return all(alert.labels.get(name) == value for name, value in filters.items())

        firing = sorted(
            (a for a in self.book.active.values() if wanted(a)), key=lambda a: a.starts_at_ms
        )
        resolved = [a for a in self.book.recently_resolved(wall_ms()) if wanted(a)]
        notifier = self.notifier
        return {
            "firing": [a.record() for a in firing],
            "resolved": [a.record() for a in reversed(resolved)],
            "partitions": sorted(self.loaded),
            "alertmanager": None
            if notifier is None
            else {
                "url": notifier.endpoint,
                "backlog": notifier.backlog,
                "last_error": notifier.last_error,
            },
        }

    def _register_api(self) -> None:
        @self.app.page("/api/alerts")
        async def alerts(web: View, request: Request) -> Response:
            return web.json(self.snapshot(dict(request.query)))
