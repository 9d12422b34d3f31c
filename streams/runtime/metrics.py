"""Every Prometheus metric salewatch exports, in one place.

Labels are bounded (docs/design.md): no SKU or user label, and store and channel values past
a cap are reported as `other`, so one misbehaving client cannot blow up Prometheus.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from importlib.metadata import version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["OTHER", "TOP_SKUS", "LabelCap", "Metrics"]

OTHER = "other"
TOP_SKUS = 5  # SKUs per store in the top-N stock gauges: the only `sku` label, bounded

# `*_created` series double the exposition and no dashboard reads them.
disable_created_metrics()


class LabelCap:
    """Admits the first `limit` distinct values of a label; later ones become `other`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._admitted: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._admitted:
            return value
        if len(self._admitted) < self._limit:
            self._admitted.add(value)
            return value
        return OTHER


class Metrics:
    """The metric families of one worker, on their own registry (fresh per test)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        max_stores: int = 500,
        max_channels: int = 32,
        max_sources: int = 16,
        max_categories: int = 100,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.store_label = LabelCap(max_stores)
        self.channel_label = LabelCap(max_channels)
        self.source_label = LabelCap(max_sources)
        self.category_label = LabelCap(max_categories)
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes & co, per worker
        self.build = Info(
            "salewatch_build", "Version of salewatch and Python this worker runs", registry=r
        )
        self.build.info({"version": version("salewatch"), "python": platform.python_version()})

        # ingest
        self.messages = Counter(
            "salewatch_messages", "Kafka messages read from input topics", ["topic"], registry=r
        )
        self.events = Counter(
            "salewatch_events",
            "Valid events read, by topic and type",
            ["topic", "type"],
            registry=r,
        )
        self.deadletters = Counter(
            "salewatch_deadletter",
            "Rejected messages or batch elements sent to the dead-letter topic",
            ["topic", "reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "salewatch_duplicate_events",
            "Events dropped as duplicates by event_id",
            ["topic"],
            registry=r,
        )
        self.late_events = Counter(
            "salewatch_late_events",
            "Events later than their window's grace",
            ["topic"],
            registry=r,
        )
        self.event_outcomes = Counter(
            "salewatch_event_outcomes",
            "Valid events by where they ended: counted (in a window), late, duplicate or "
            "ignored (on time, but no window counts them); per topic these add up to "
            "salewatch_events_total once processed",
            ["topic", "outcome"],
            registry=r,
        )
        self.unaccounted = Counter(
            "salewatch_unaccounted_events",
            "Events a stage's runtime check found counted nowhere (a bug: see the runbook)",
            ["stage"],
            registry=r,
        )
        self.last_event = Gauge(
            "salewatch_last_event_timestamp_seconds",
            "Wall-clock time the last valid event of a topic was read",
            ["topic"],
            registry=r,
        )
        self.newest_event_time = Gauge(
            "salewatch_newest_event_time_seconds",
            "Event time (ts) of the newest valid event read from a topic; now minus it is the "
            "event-time lag",
            ["topic"],
            registry=r,
        )
        self.processed = Counter(
            "salewatch_processed_events",
            "Events through each pipeline step (ingest, funnel), duplicates included",
            ["step"],
            registry=r,
        )
        self.watermark = Gauge(
            "salewatch_watermark_timestamp_seconds",
            "Event-time watermark of this worker's funnel partitions (windows before it closed)",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "salewatch_consumer_lag_messages",
            "Messages behind the end of the input topic, summed over this worker's partitions",
            ["topic"],
            registry=r,
        )
        self.health_check = Gauge(
            "salewatch_health_check",
            "1 while a health check passes, 0 while it fails (the reasons of /health: "
            "ingest_running, ingest_delivering, ingest_reporting, kafka_reachable, "
            "agents_running, tables_ready)",
            ["check"],
            registry=r,
        )
        self.restore_remaining = Gauge(
            "salewatch_restore_remaining_records",
            "Changelog records this worker still reads before its tables serve (0: restored)",
            registry=r,
        )
        self.produce_errors = Counter(
            "salewatch_produce_errors",
            "Sends Kafka refused or did not acknowledge, by output topic: stage 1's (the input "
            "behind them is not committed but read again) and the worker's partials, stock "
            "changes and final windows (lost: the log names them)",
            ["topic"],
            registry=r,
        )

        # funnel (closed windows and running totals)
        self.funnel_events = Counter(
            "salewatch_funnel_events",
            "Funnel events counted into windows, by stage",
            ["store", "channel", "stage"],
            registry=r,
        )
        self.window_users = Gauge(
            "salewatch_window_users",
            "Unique users of the latest closed window, by stage (HLL estimate)",
            ["store", "channel", "stage"],
            registry=r,
        )
        self.conversion = Gauge(
            "salewatch_conversion_ratio",
            "Step conversion into a stage in the latest closed window (0-1)",
            ["store", "channel", "stage"],
            registry=r,
        )
        self.gmv = Counter(
            "salewatch_gmv",
            "Gross merchandise value of paid orders, in currency units",
            ["store", "channel", "currency"],
            registry=r,
        )
        self.paid_orders = Counter(
            "salewatch_paid_orders",
            "Paid orders, by the currency they paid in (AOV = GMV / paid orders per currency)",
            ["store", "channel", "currency"],
            registry=r,
        )
        self.payment_failures = Counter(
            "salewatch_payment_failures",
            "payment_failed events counted in final windows",
            ["store", "channel"],
            registry=r,
        )
        self.refund_requests = Counter(
            "salewatch_refund_requests",
            "refund_requested events counted in final windows",
            ["store", "channel"],
            registry=r,
        )
        self.payment_failure_ratio = Gauge(
            "salewatch_payment_failure_ratio",
            "payment_failed / (order_paid + payment_failed) in the latest closed window",
            ["store", "channel"],
            registry=r,
        )
        self.refund_ratio = Gauge(
            "salewatch_refund_ratio",
            "refund_requested / order_paid in the latest closed window",
            ["store", "channel"],
            registry=r,
        )
        self.visit_depth = Gauge(
            "salewatch_visit_depth_ratio",
            "PV / UV: impressions and clicks per unique visitor (users of either, HLL "
            "estimate) in the latest closed window",
            ["store", "channel"],
            registry=r,
        )
        self.traffic_events = Counter(
            "salewatch_traffic_events",
            "Impressions and clicks counted into windows, by traffic source (events naming one)",
            ["store", "source", "stage"],
            registry=r,
        )
        self.category_events = Counter(
            "salewatch_category_events",
            "Impressions and clicks counted into windows, by category (events naming one)",
            ["store", "category", "stage"],
            registry=r,
        )
        self.campaign_spend = Counter(
            "salewatch_campaign_spend",
            "Campaign spend of final windows (the calendar's per-phase spend per channel, "
            "spread over the phase), in currency units: ROI = GMV / spend",
            ["store", "channel", "currency"],
            registry=r,
        )
        self.buyers = Counter(
            "salewatch_buyers",
            "Paying users of final windows, new (first purchase at the store within the "
            "lookback) or returning",
            ["store", "channel", "kind"],
            registry=r,
        )
        self.repurchase_ratio = Gauge(
            "salewatch_repurchase_ratio",
            "Returning buyers / paying users in the latest closed window",
            ["store", "channel"],
            registry=r,
        )
        self.refund_amount = Counter(
            "salewatch_refund_amount",
            "Amount of refund requests counted in final windows, in currency units",
            ["store", "channel"],
            registry=r,
        )
        self.returns = Counter(
            "salewatch_returns",
            "return_received events counted in final windows",
            ["store", "channel"],
            registry=r,
        )
        self.complaints = Counter(
            "salewatch_complaints",
            "complaint events counted in final windows",
            ["store", "channel"],
            registry=r,
        )
        self.aftersales_ratio = Gauge(
            "salewatch_aftersales_ratio",
            "(refund requests + returns) / paid orders in the latest closed window",
            ["store", "channel"],
            registry=r,
        )
        self.complaint_ratio = Gauge(
            "salewatch_complaint_ratio",
            "complaints / paid orders in the latest closed window",
            ["store", "channel"],
            registry=r,
        )
        self.windows_closed = Counter(
            "salewatch_windows_closed", "Final window results emitted", registry=r
        )

        # inventory
        self.stock_out_skus = Gauge(
            "salewatch_stock_out_skus", "SKUs with available stock <= 0", ["store"], registry=r
        )
        self.low_stock_skus = Gauge(
            "salewatch_low_stock_skus",
            "SKUs predicted to run out soon at the recent sales rate",
            ["store"],
            registry=r,
        )
        self.stock_out_top = Gauge(
            "salewatch_stock_out_top_skus",
            f"Available stock (<= 0) of the {TOP_SKUS} most oversold out-of-stock SKUs per store",
            ["store", "sku"],
            registry=r,
        )
        self.low_stock_top = Gauge(
            "salewatch_low_stock_top_skus",
            f"Minutes to stock-out of the {TOP_SKUS} most urgent running-low SKUs per store",
            ["store", "sku"],
            registry=r,
        )
        self.slow_moving_skus = Gauge(
            "salewatch_slow_moving_skus",
            "SKUs with stock on hand that sit unsold or sell far below the rate that clears "
            "them (slow-moving)",
            ["store"],
            registry=r,
        )
        self.stockouts = Counter(
            "salewatch_stockouts", "Transitions of a SKU into stock-out", ["store"], registry=r
        )
        self.restocks = Counter(
            "salewatch_restocks", "Restock events applied", ["store"], registry=r
        )

        # alerts and the campaign calendar
        self.sale_start = Gauge(
            "salewatch_sale_start_timestamp_seconds",
            "Start of the sale: the campaign calendar's first phase, or else today's midnight "
            "(the worker's time zone)",
            registry=r,
        )
        self.campaign_phase = Gauge(
            "salewatch_campaign_phase_active",
            "1 while a phase of the campaign calendar runs, else 0",
            ["phase"],
            registry=r,
        )
        self.alerts_firing = Gauge(
            "salewatch_alerts_firing",
            "Business alerts firing now",
            ["alertname", "severity"],
            registry=r,
        )
        self.alert_notifications = Counter(
            "salewatch_alert_notifications",
            "Alert deliveries to Alertmanager, by result",
            ["result"],
            registry=r,
        )

    def watch_process(self, namespace: str, pid: Callable[[], int | None]) -> None:
        """`<namespace>_process_*` (CPU, memory, open files) of another process of this worker,
        exported while `pid()` names a running one."""
        ProcessCollector(namespace=namespace, pid=lambda: str(pid()), registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
