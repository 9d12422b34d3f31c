"""Grafana dashboards as code: the war room and the platform dashboard.

Built with grafana-foundation-sdk, Grafana's own typed builders (generated from Grafana's
schema, pinned to the Grafana version of docker-compose.yml). ``python -m grafana.dashboards``
writes ``grafana/dashboards/<uid>.json``; with ``--check`` it writes nothing and exits 1 if a
file is missing, stale or unexpected (CI runs the check through
``tests/grafana/test_dashboards.py``). Output is deterministic: sorted keys, fixed uids and
panel ids.

Panels are laid out top to bottom in the order ops reads them. Every panel says what it
shows and what to do when it looks wrong, with the runbook section of the alert that goes
with it. Thresholds drawn on panels are those of the matching alerts.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.builders import prometheus as promql
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from alerts.as_code import generate_main
from alerts.links import PLATFORM_DASHBOARD_UID, WARROOM_DASHBOARD_UID, runbook_url
from alerts.prometheus_rules import CONFIG as RULES
from alerts.thresholds import Thresholds
from streams.funnel.aggregates import STAGES
from streams.runtime.metrics import TOP_SKUS

__all__ = ["DATASOURCE_UID", "GRID_WIDTH", "OUTPUT_DIR", "build_dashboards", "main", "render"]

Json = dict[str, Any]

OUTPUT_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE_UID = "prometheus"  # provisioning/datasources/prometheus.yml
ALERTMANAGER_UID = "alertmanager"  # provisioning/datasources/alertmanager.yml
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
GRID_WIDTH = 24
TAG = "salewatch"

# Label filters: a store x channel slice for the war room, a worker slice for the platform.
SLICE = 'job="salewatch", store=~"$store", channel=~"$channel"'
STORES = 'job="salewatch", store=~"$store"'
WORKERS = 'job="salewatch", instance=~"$instance"'
SALE = "${sale_seconds}s"  # the sale so far (variable `sale_seconds`)
SALE_START = 'salewatch_sale_start_timestamp_seconds{job="salewatch"}'

# Thresholds of the alerts, drawn on the matching panels: the rules' and detectors' own.
LAG_ALERT_MESSAGES = RULES.lag_messages
DEADLETTER_ALERT_RATIO = RULES.deadletter_ratio
PAYMENT_FAILURE_FLOOR = Thresholds().payment_failure.min_rate

Kind = Literal["timeseries", "stat", "table", "bargauge"]


@dataclass(frozen=True)
class Query:
    """One PromQL target; `instant` for stats and tables (one value per series, now)."""

    expr: str
    legend: str = "__auto"
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    description: str
    kind: Kind = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    threshold: float | None = None  # drawn in red: the matching alert's threshold


@dataclass(frozen=True)
class Row:
    title: str


Item = Panel | Row


def panel(title: str, expr: str, legend: str, description: str, **options: Any) -> Panel:
    """A panel with one query; stats, tables and bar gauges ask for the value now."""
    instant = options.get("kind", "timeseries") != "timeseries"
    return Panel(title, (Query(expr, legend, instant),), description, **options)


def runbook(alertname: str) -> str:
    return f"Alert {alertname}: runbook {runbook_url(alertname)}"


# -- PromQL building blocks -------------------------------------------------------------------


def since_sale_start(metric: str, selector: str, by: str) -> str:
    """Exact increase of a counter since the sale started (`sale_seconds` ago): its value now
    minus its value then (0 for series born since). Exact while no worker restarted during
    the sale; a restart starts its counters again from 0 and this total drops by what they
    had counted (the per-minute panels and the window records are not affected)."""
    now = f"sum by ({by}) ({metric}{{{selector}}})"
    then = f"{metric}{{{selector}}} offset {SALE}"
    return f"{now} - (sum by ({by}) ({then}) or {now} * 0)"


def per_minute(metric: str, selector: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[$__rate_interval])) * 60"


def rate_of(metric: str, selector: str, by: str = "") -> str:
    grouping = f"by ({by}) " if by else ""
    return f"sum {grouping}(rate({metric}{{{selector}}}[$__rate_interval]))"


def at_stage(stage: str) -> str:
    return f'{SLICE}, stage="{stage}"'


# -- the war room -----------------------------------------------------------------------------


def _sale_panels() -> list[Item]:
    gmv = since_sale_start("salewatch_gmv_total", SLICE, "currency")
    paid = since_sale_start("salewatch_paid_orders_total", SLICE, "currency")
    stat_ = {"kind": "stat", "width": 6, "height": 5}
    return [
        Row("The sale so far"),
        panel(
            "GMV of the sale so far",
            gmv,
            "{{currency}}",
            "Paid order amounts since the sale started (the campaign calendar's first phase, or "
            "today's midnight), per currency. Flat while orders come in: check payments below "
            "and " + runbook("PaymentFailureSpike") + ". It drops after a worker restart "
            "(its counters start again): GMV per minute stays right.",
            **stat_,
        ),
        panel(
            "Paid orders of the sale so far",
            f"sum({paid})",
            "paid orders",
            "Orders paid since the sale started, all currencies. Compare with orders placed in "
            "the funnel below; a gap that grows means payments fail.",
            **stat_,
        ),
        panel(
            "Average order value per currency",
            f"({gmv}) / on (currency) ({paid})",
            "{{currency}}",
            "GMV of a currency over the orders paid in that currency, since the sale started. "
            "A sudden fall with steady orders: a price or coupon error, check with the store.",
            **stat_,
        ),
        panel(
            "Unique visitors (latest minute)",
            f'sum(salewatch_window_users{{{SLICE}, stage="impression"}})',
            "UV",
            "Users who saw a product in the latest closed window (HLL estimate, 1.6% error), "
            "summed over the selected stores and channels. Near 0: traffic is gone, see "
            + runbook("TrafficDrop")
            + ".",
            **stat_,
        ),
        panel(
            "GMV per minute",
            f"topk($topn, {per_minute('salewatch_gmv_total', SLICE, 'currency')})",
            "{{currency}}",
            "GMV paid per minute by currency (live counters, move within a second of the "
            "payment). A drop to 0 while traffic holds: payments or checkout are broken.",
            width=12,
        ),
        panel(
            "Paid orders per minute by store",
            f"topk($topn, {per_minute('salewatch_paid_orders_total', SLICE, 'store')})",
            "{{store}}",
            "The $topn stores with the most paid orders per minute. One store falling alone "
            "while the others hold: look at that store's funnel and stock.",
            width=12,
        ),
    ]


def _funnel_panels() -> list[Item]:
    funnel = "salewatch_funnel_events_total"
    # one query per stage, so the bars come in funnel order whatever Prometheus returns
    totals = [
        Query(f"sum({since_sale_start(funnel, at_stage(stage), 'stage')})", stage, instant=True)
        for stage in STAGES
    ]
    step = [
        Query(
            f"{rate_of(funnel, at_stage(stage))} / {rate_of(funnel, at_stage(previous))}",
            f"{previous} → {stage}",
        )
        for previous, stage in itertools.pairwise(STAGES)
    ]
    end_to_end = f"{rate_of(funnel, at_stage('pay'))} / {rate_of(funnel, at_stage('impression'))}"
    # one series per pair on each side: a pair's old owner (before a rebalance) may still
    # export it beside the new one, and a many-to-many product is an error
    cart_to_pay = " * on (store, channel) ".join(
        f"max by (store, channel) (salewatch_conversion_ratio{{{at_stage(stage)}}})"
        for stage in ("pay", "order")
    )
    worst = f"bottomk($topn, {cart_to_pay})"
    return [
        Row("Funnel: impression → click → cart → order → pay"),
        Panel(
            "Funnel of the sale so far",
            tuple(totals),
            "Events per stage since the sale started, in funnel order (one order counts once "
            "at order and once at pay). A stage far below the one before it is where buyers "
            "are lost: see " + runbook("ConversionDrop") + ".",
            kind="bargauge",
            width=8,
        ),
        Panel(
            "Step conversion",
            tuple(step),
            "Each stage over the stage before it, per minute, over the selected stores and "
            "channels. A step that falls while the others hold is the broken step: "
            + runbook("ConversionDrop")
            + ".",
            unit="percentunit",
            width=8,
        ),
        Panel(
            "End-to-end conversion and the weakest channels",
            (
                Query(end_to_end, "impression → pay"),
                Query(worst, "{{store}} / {{channel}} cart → pay (latest window)"),
            ),
            "Paid orders over impressions, and the $topn store x channel pairs with the lowest "
            "cart → pay conversion in their latest closed window. A pair alone at the bottom "
            "for several minutes: its checkout, see " + runbook("ConversionDrop") + ".",
            unit="percentunit",
            width=8,
        ),
    ]


def _payment_panels() -> list[Item]:
    failures = rate_of("salewatch_payment_failures_total", SLICE)
    paid = rate_of("salewatch_paid_orders_total", SLICE)
    refunds = rate_of("salewatch_refund_requests_total", SLICE)
    aftersales = rate_of("salewatch_events_total", 'job="salewatch", topic=~".*aftersales"', "type")
    all_paid = rate_of("salewatch_paid_orders_total", 'job="salewatch"')
    worst_payment = f"topk($topn, salewatch_payment_failure_ratio{{{SLICE}}})"
    return [
        Row("Payments and after-sales"),
        Panel(
            "Payment failure rate",
            (
                Query(f"{failures} / ({failures} + {paid})", "selected stores"),
                Query(worst_payment, "{{store}} / {{channel}} (latest window)"),
            ),
            "payment_failed / (order_paid + payment_failed), over the selection and for the "
            "$topn worst store x channel pairs of the latest window; the red line is the "
            "alert's floor. Above it for a store: " + runbook("PaymentFailureSpike") + ".",
            unit="percentunit",
            threshold=PAYMENT_FAILURE_FLOOR,
        ),
        Panel(
            "Refund and after-sales rate",
            (
                Query(f"{refunds} / {paid}", "refund requests / paid orders"),
                Query(f"{aftersales} / scalar({all_paid})", "{{type}} / paid orders (all stores)"),
            ),
            "Refund requests per paid order over the selection, and every after-sales event "
            "type per paid order over all stores. A rise after a promotion started: "
            + runbook("RefundSurge")
            + ".",
            unit="percentunit",
        ),
    ]


def _operations_panels() -> list[Item]:
    """Buyers, visit depth, traffic sources and categories, ROI, complaints."""
    buyers = per_minute("salewatch_buyers_total", SLICE, "kind")
    returning = rate_of("salewatch_buyers_total", f'{SLICE}, kind="returning"')
    paying = rate_of("salewatch_buyers_total", SLICE)
    gmv = since_sale_start("salewatch_gmv_total", SLICE, "channel, currency")
    spend = since_sale_start("salewatch_campaign_spend_total", SLICE, "channel, currency")
    paid = since_sale_start("salewatch_paid_orders_total", SLICE, "channel, currency")
    paid_rate = rate_of("salewatch_paid_orders_total", SLICE)
    complaints = rate_of("salewatch_complaints_total", SLICE)
    returns = rate_of("salewatch_returns_total", SLICE)
    refunds = rate_of("salewatch_refund_requests_total", SLICE)
    clicks = f'{STORES}, stage="click"'
    return [
        Row("Buyers, traffic and returns on spend"),
        Panel(
            "New and returning buyers per minute",
            (Query(buyers, "{{kind}}"), Query(f"{returning} / {paying}", "repurchase rate")),
            "Paying users of the final windows: new (no paid order at the store within "
            "SALEWATCH_BUYER_LOOKBACK_MS, or the store says first purchase) and returning; "
            "the repurchase rate is returning / paying users (right axis scale: 0-1). A "
            "promotion for new buyers that brings only returning ones is not working.",
            width=8,
        ),
        panel(
            "Visit depth (PV / UV), shallowest pairs",
            f"bottomk($topn, salewatch_visit_depth_ratio{{{SLICE}}})",
            "{{store}} / {{channel}}",
            "Impressions and clicks per unique visitor in each pair's latest closed window, the "
            "$topn shallowest. Falling towards 1 with steady traffic: visitors bounce after one "
            "page (a landing page or search problem).",
            width=8,
        ),
        panel(
            "Clicks per minute by traffic source",
            f"topk($topn, {per_minute('salewatch_traffic_events_total', clicks, 'source')})",
            "{{source}}",
            "Clicks by the `source` the stores send (search, recommend, live, ad, ...), the "
            "$topn largest; events without a source are not in it. One source gone while the "
            "others hold: that placement or campaign stopped, see " + runbook("TrafficDrop") + ".",
            width=8,
        ),
        panel(
            "Clicks per minute by category",
            f"topk($topn, {per_minute('salewatch_category_events_total', clicks, 'category')})",
            "{{category}}",
            "Clicks by product category, the $topn largest. A category with clicks but no "
            "sales shows up as slow-moving stock: " + runbook("SlowMovingStock") + ".",
            width=8,
        ),
        Panel(
            "ROI and cost per paid order, sale so far",
            (
                Query(f"({gmv}) / ({spend})", "ROI {{channel}} ({{currency}})", instant=True),
                Query(f"({spend}) / ({paid})", "cost per order {{channel}}", instant=True),
            ),
            "GMV over campaign spend (the calendar's per-phase spend per channel) since the "
            "sale started, per channel, and spend per paid order. Channels without spend in "
            "the calendar are not shown. An ROI under 1: the channel's spend returns less "
            "than it costs.",
            kind="table",
            width=8,
        ),
        Panel(
            "Complaint and after-sales rates",
            (
                Query(f"{complaints} / {paid_rate}", "complaints / paid orders"),
                Query(f"({refunds} + {returns}) / {paid_rate}", "(refunds + returns) / paid"),
            ),
            "From the final windows of the selection. Complaints rising after a stock-out: "
            "oversold orders, see " + runbook("ComplaintSurge") + ".",
            unit="percentunit",
            width=8,
        ),
    ]


def _stock_panels() -> list[Item]:
    out = f"topk($topn, -salewatch_stock_out_top_skus{{{STORES}}})"
    low = f"bottomk($topn, salewatch_low_stock_top_skus{{{STORES}}})"
    return [
        Row("Stock"),
        Panel(
            "Out of stock now (most oversold)",
            (Query(out, "{{store}} {{sku}}", instant=True),),
            f"Up to {TOP_SKUS} out-of-stock SKUs per store, the most oversold first (value: "
            "units sold beyond stock). Restock or take the SKU off the promotion: "
            + runbook("StockOut")
            + ".",
            kind="table",
            width=8,
        ),
        Panel(
            "Running low (minutes to stock-out)",
            (Query(low, "{{store}} {{sku}}", instant=True),),
            f"Up to {TOP_SKUS} SKUs per store that run out soonest at their recent sales rate. "
            "Restock the ones under the alert's minutes first: " + runbook("LowStockSoon") + ".",
            kind="table",
            unit="m",
            width=8,
        ),
        Panel(
            "Out-of-stock and low SKUs per store",
            (
                Query(
                    f"topk($topn, sum by (store) (salewatch_stock_out_skus{{{STORES}}}))",
                    "out {{store}}",
                ),
                Query(
                    f"topk($topn, sum by (store) (salewatch_low_stock_skus{{{STORES}}}))",
                    "low {{store}}",
                ),
            ),
            "How many SKUs each store has out of stock and running low, for the $topn stores "
            "with the most. A store climbing fast: its restock feed may have stopped.",
            width=8,
        ),
        panel(
            "Slow-moving SKUs per store",
            f"topk($topn, sum by (store) (salewatch_slow_moving_skus{{{STORES}}}))",
            "{{store}}",
            "SKUs with stock on hand that have not sold for SALEWATCH_SLOW_MOVING_MINUTES or "
            "sell far below the rate that clears them (滞销), the $topn stores with the most; "
            "the list: GET /api/stock/<store>?status=slow. " + runbook("SlowMovingStock") + ".",
            width=24,
            height=6,
        ),
    ]


def _alert_panels() -> list[Item]:
    stream = 'salewatch_alerts_firing{job="salewatch"} > 0'
    rules = 'count by (alertname, severity) (ALERTS{alertstate="firing", alertname!="Watchdog"})'
    return [
        Row("Alerts"),
        Panel(
            "Firing alerts",
            (
                Query(stream, "{{alertname}} ({{severity}})", instant=True),
                Query(rules, "{{alertname}} ({{severity}})", instant=True),
            ),
            "Business alerts of the stream detectors and platform alerts of Prometheus firing "
            "now, with how many instances. Each alert's labels (store, SKU, channel), silences "
            "and history are in Grafana's Alerting page with the Alertmanager data source; every "
            "alert links its runbook section (alerts/runbook.md).",
            kind="table",
            width=24,
            height=6,
        ),
    ]


def warroom() -> builder.Dashboard:
    funnel = 'salewatch_funnel_events_total{job="salewatch"'
    variables = [
        datasource_variable(),
        query_variable("store", "Store", f"label_values({funnel}}}, store)"),
        query_variable("channel", "Channel", f'label_values({funnel}, store=~"$store"}}, channel)'),
        topn_variable(),
        sale_variable(),
    ]
    annotations = [
        annotation("Campaign phases", "salewatch_campaign_phase_active == 1", "{{phase}}", "blue"),
        annotation(
            "Business alerts",
            'salewatch_alerts_firing{job="salewatch"} > 0',
            "{{alertname}}",
            "red",
        ),
    ]
    items = [
        *_sale_panels(),
        *_funnel_panels(),
        *_payment_panels(),
        *_operations_panels(),
        *_stock_panels(),
        *_alert_panels(),
    ]
    return dashboard(WARROOM_DASHBOARD_UID, "salewatch / war room", variables, annotations, items)


# -- the platform dashboard ---------------------------------------------------------------------


def _process_panels() -> list[Item]:
    panels: list[Item] = []
    for prefix, who in (
        ("process", "worker (stages 2, 3)"),
        ("salewatch_ingest_process", "stage 1"),
    ):
        panels.append(
            Panel(
                f"CPU and memory: {who}",
                (
                    Query(
                        f"rate({prefix}_cpu_seconds_total{{{WORKERS}}}[$__rate_interval])",
                        "CPU cores {{instance}}",
                    ),
                    Query(
                        f"{prefix}_resident_memory_bytes{{{WORKERS}}} / 2^30",
                        "memory GiB {{instance}}",
                    ),
                ),
                f"The {who} process of each worker: cores used and resident memory. CPU near "
                "1 core: that process is the bottleneck, add workers (partitions allow up to "
                "one per partition). Memory growing without bound: restart and report.",
            )
        )
    return panels


def platform() -> builder.Dashboard:
    variables = [
        datasource_variable(),
        query_variable("instance", "Worker", 'label_values(up{job="salewatch"}, instance)'),
    ]
    deadletters = rate_of("salewatch_deadletter_total", WORKERS, "topic, reason")
    valid_or_dead = (
        f"rate(salewatch_events_total{{{WORKERS}}}[$__rate_interval])"
        f" or rate(salewatch_deadletter_total{{{WORKERS}}}[$__rate_interval])"
    )
    deadletter_ratio = (
        f"{rate_of('salewatch_deadletter_total', WORKERS, 'topic')}"
        f" / (sum by (topic) ({valid_or_dead}) > 0)"
    )
    stat_ = {"kind": "stat", "width": 8, "height": 5}
    items: list[Item] = [
        panel(
            "Workers up",
            f"sum(up{{{WORKERS}}})",
            "up",
            "Workers Prometheus scrapes. Fewer than deployed: " + runbook("SalewatchWorkerDown"),
            **stat_,
        ),
        panel(
            "Platform alerts firing",
            'count(ALERTS{alertstate="firing", alertname=~"Salewatch.*"}) or vector(0)',
            "firing",
            "Prometheus alerts of the platform firing now; each has a runbook section "
            "(alerts/runbook.md).",
            **stat_,
        ),
        panel(
            "Build",
            f"count by (version, python) (salewatch_build_info{{{WORKERS}}})",
            "{{version}} / Python {{python}}",
            "Workers per salewatch version. Two versions at once outside a rolling deploy: a "
            "worker was left behind.",
            **stat_,
        ),
        Row("Input"),
        panel(
            "Consumer lag by topic",
            f"sum by (topic) (salewatch_consumer_lag_messages{{{WORKERS}}})",
            "{{topic}}",
            "Messages behind the end of each input topic. Growing past the red line: "
            + runbook("SalewatchConsumerLagHigh"),
            threshold=LAG_ALERT_MESSAGES,
        ),
        panel(
            "Event-time lag by topic",
            f"time() - max by (topic) (salewatch_newest_event_time_seconds{{{WORKERS}}})",
            "{{topic}}",
            "Now minus the event time of the newest event read per topic: how stale the "
            "freshest data is. Growing on one topic: its producers stopped or lag; on all: "
            "the workers are behind (see consumer lag).",
            unit="s",
        ),
        panel(
            "Seconds since the last event (wall clock)",
            f"time() - max by (topic) (salewatch_last_event_timestamp_seconds{{{WORKERS}}})",
            "{{topic}}",
            "How long since a valid event of each topic arrived. All growing: "
            + runbook("SalewatchNoEvents"),
            unit="s",
        ),
        panel(
            "Watermark behind now",
            f"time() - max(salewatch_watermark_timestamp_seconds{{{WORKERS}}})",
            "watermark",
            "How far event time behind now windows are closed. Above window + grace (90 s) "
            "and growing: an input holds the watermark back, windows wait (docs/architecture.md,"
            " watermark).",
            unit="s",
        ),
        Row("Data quality"),
        panel(
            "Dead letters per minute by reason",
            f"{deadletters} * 60",
            "{{topic}}: {{reason}}",
            "Rejected messages by topic and reason (headers on salewatch.deadletter say which). "
            "A new reason after a store's release: " + runbook("SalewatchDeadLetterRateHigh"),
            width=8,
        ),
        panel(
            "Dead-letter ratio by topic",
            deadletter_ratio,
            "{{topic}}",
            "Share of input rejected; the red line is the alert's threshold: "
            + runbook("SalewatchDeadLetterRateHigh"),
            unit="percentunit",
            threshold=DEADLETTER_ALERT_RATIO,
            width=8,
        ),
        Panel(
            "Late and duplicate events per minute",
            (
                Query(
                    f"{rate_of('salewatch_late_events_total', WORKERS, 'topic')} * 60",
                    "late {{topic}}",
                ),
                Query(
                    f"{rate_of('salewatch_duplicate_events_total', WORKERS, 'topic')} * 60",
                    "duplicate {{topic}}",
                ),
            ),
            "Events after their window's grace (counted nowhere) and repeated event ids. Late "
            "events rising: a producer sends in bursts or its clock is off.",
            width=8,
        ),
        Row("Processes and delivery"),
        *_process_panels(),
        panel(
            "Events per second through each pipeline step",
            rate_of("salewatch_processed_events_total", WORKERS, "step"),
            "{{step}}",
            "Throughput of ingest, funnel and inventory. A step far below the one before it "
            "is where work piles up.",
        ),
        panel(
            "Alert deliveries to Alertmanager per second",
            rate_of("salewatch_alert_notifications_total", WORKERS, "result"),
            "{{result}}",
            "Business alerts sent to Alertmanager by result. Failures: on-call is not paged; "
            "check SALEWATCH_ALERTMANAGER_URL and Alertmanager, and " + runbook("Watchdog"),
        ),
    ]
    return dashboard(PLATFORM_DASHBOARD_UID, "salewatch / platform", variables, [], items)


# -- SDK plumbing --------------------------------------------------------------------------------


def datasource_variable() -> builder.DatasourceVariable:
    current = model.VariableOption(selected=False, text="Prometheus", value=DATASOURCE_UID)
    return (
        builder.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(current)
    )


def query_variable(name: str, label: str, query: str) -> builder.QueryVariable:
    """A multi-value label_values() variable with an `All` option matching `.*`."""
    return (
        builder.QueryVariable(name)
        .label(label)
        .query(query)
        .datasource(DATASOURCE)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )


def topn_variable() -> builder.CustomVariable:
    """How many series the per-store panels draw, so `All` of 500 stores stays readable."""
    return (
        builder.CustomVariable("topn")
        .label("Series shown")
        .values("5,10,20")
        .current(model.VariableOption(selected=True, text="10", value="10"))
    )


def sale_variable() -> builder.QueryVariable:
    """Seconds since the sale started (salewatch_sale_start_timestamp_seconds), for the
    sale-so-far totals; hidden, refreshed with the time range."""
    return (
        builder.QueryVariable("sale_seconds")
        .label("Seconds of the sale so far")
        .query(f"query_result(ceil(time() - max({SALE_START})))")
        .regex(r"/\} (\d+)/")
        .datasource(DATASOURCE)
        .hide(model.VariableHide.HIDE_VARIABLE)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
    )


class PrometheusAnnotation(model.AnnotationQuery):
    """A Prometheus annotation with its title (the SDK's model carries `expr` only)."""

    def __init__(self, title_format: str, **fields: Any) -> None:
        super().__init__(**fields)
        self.title_format = title_format

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload.update(titleFormat=self.title_format, step="60s", useValueForTime=False)
        return payload


def annotation(name: str, expr: str, title: str, color: str) -> PrometheusAnnotation:
    return PrometheusAnnotation(
        title, name=name, datasource=DATASOURCE, enable=True, icon_color=color, expr=expr
    )


def _target(query: Query, ref_id: str) -> promql.Dataquery:
    target = (
        promql.Dataquery()
        .expr(query.expr)
        .legend_format(query.legend)
        .ref_id(ref_id)
        .datasource(DATASOURCE)
    )
    if query.instant:
        return target.instant().format(PromQueryFormat.TABLE)
    return target.range()


def _thresholds(threshold: float | None) -> builder.ThresholdsConfig:
    steps = [model.Threshold(color="green", value=None)]
    if threshold is not None:
        steps.append(model.Threshold(color="red", value=threshold))
    return builder.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps)


def _panel_builder(item: Panel) -> Any:
    if item.kind == "stat":
        built: Any = stat.Panel().graph_mode(common.BigValueGraphMode.AREA)
    elif item.kind == "table":
        built = table.Panel().with_transformation(
            model.DataTransformerConfig(id_val="merge", options={})
        )
    elif item.kind == "bargauge":
        built = bargauge.Panel().orientation(common.VizOrientation.HORIZONTAL)
    else:
        built = timeseries.Panel().fill_opacity(10)
        if item.threshold is not None:
            line = common.GraphThresholdsStyleMode.LINE
            built = built.thresholds_style(common_builder.GraphThresholdsStyleConfig().mode(line))
    built = (
        built.title(item.title)
        .description(item.description)
        .datasource(DATASOURCE)
        .span(item.width)
        .height(item.height)
        .unit(item.unit)
        .thresholds(_thresholds(item.threshold))
    )
    for index, query in enumerate(item.queries):
        built = built.with_target(_target(query, chr(ord("A") + index)))
    return built


def dashboard(
    uid: str,
    title: str,
    variables: Sequence[Any],
    annotations: Sequence[PrometheusAnnotation],
    items: Sequence[Item],
) -> builder.Dashboard:
    """A whole dashboard; its header links to every dashboard tagged ``salewatch``."""
    board = (
        builder.Dashboard(title)
        .uid(uid)
        .tags([TAG])
        .refresh("10s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .readonly()
        .link(
            builder.DashboardLink("salewatch")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .keep_time(True)
        )
        .variables(list(variables))
    )
    for item in items:
        if isinstance(item, Row):
            board = board.with_row(builder.Row(item.title))
        else:
            board = board.with_panel(_panel_builder(item))
    built = board.build()
    built.annotations = model.AnnotationContainer(list_val=list(annotations))
    for panel_id, built_panel in enumerate(built.panels or [], start=1):
        built_panel.id_val = panel_id
    return built


def to_json(board: Any) -> Json:
    result: Json = json.loads(json.dumps(board, cls=JSONEncoder))
    return result


def build_dashboards() -> dict[str, Json]:
    """Every dashboard, keyed by its file name."""
    boards = (to_json(warroom()), to_json(platform()))
    return {f"{board['uid']}.json": board for board in boards}


def render(board: Json) -> str:
    return json.dumps(board, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# -- command line -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    return generate_main(
        "grafana.dashboards",
        __doc__.splitlines()[0],
        OUTPUT_DIR,
        ".json",
        lambda: {name: render(board) for name, board in build_dashboards().items()},
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
