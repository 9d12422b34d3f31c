"""Grafana dashboards as code: the war room and the platform dashboard.

``python -m grafana.dashboards`` writes ``grafana/dashboards/<uid>.json``; with ``--check`` it
writes nothing and exits 1 if a file is missing, stale or unexpected (CI runs the check
through ``tests/grafana/test_dashboards.py``). Output is deterministic: sorted keys, fixed
uids and panel ids, so a regenerated file only differs when the code changed.

Queries read the recording rules of ``alerts/rules/recording.yml`` where one exists, and the
raw metrics of ``docs/architecture.md`` otherwise. Thresholds drawn on panels are the
thresholds of the matching platform alerts (``alerts/rules/platform.yml``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alerts.as_code import generate_main
from alerts.links import PLATFORM_DASHBOARD_UID, WARROOM_DASHBOARD_UID
from alerts.prometheus_rules import CONFIG as RULES

__all__ = [
    "DATASOURCE_UID",
    "OUTPUT_DIR",
    "Panel",
    "Query",
    "Row",
    "build_dashboards",
    "main",
    "render",
]

Json = dict[str, Any]

OUTPUT_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE_UID = "prometheus"  # provisioning/datasources/prometheus.yml
DATASOURCE: Json = {"type": "prometheus", "uid": "${datasource}"}  # the variable below
GRID_WIDTH = 24
TAG = "salewatch"
SCHEMA_VERSION = 39

# Label filters: a store x channel slice for the war room, a worker slice for the platform.
# Recorded series (level:metric:operation) keep only the labels of their level, no `job`.
SLICE = 'job="salewatch", store=~"$store", channel=~"$channel"'
RECORDED_SLICE = 'store=~"$store", channel=~"$channel"'
WORKERS = 'job="salewatch", instance=~"$instance"'

# Thresholds of the platform alerts, drawn on the matching panels: the rules' own settings.
LAG_ALERT_MESSAGES = RULES.lag_messages
DEADLETTER_ALERT_RATIO = RULES.deadletter_ratio


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel."""

    expr: str
    legend: str = "__auto"


@dataclass(frozen=True)
class Panel:
    """A visualisation; laid out left to right, wrapping at the grid width."""

    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: Literal["timeseries", "stat", "bargauge"] = "timeseries"
    width: int = 12
    height: int = 8
    description: str = ""
    threshold: float | None = None  # drawn in red; the matching alert's threshold


@dataclass(frozen=True)
class Row:
    """A full-width section title."""

    title: str


Item = Panel | Row


# -- JSON building blocks ---------------------------------------------------------------------


def _target(query: Query, ref_id: str) -> Json:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": query.expr,
        "legendFormat": query.legend,
        "range": True,
        "refId": ref_id,
    }


def _thresholds(threshold: float | None) -> Json:
    steps: list[Json] = [{"color": "green", "value": None}]
    if threshold is not None:
        steps.append({"color": "red", "value": threshold})
    return {"mode": "absolute", "steps": steps}


def _field_config(panel: Panel) -> Json:
    defaults: Json = {"unit": panel.unit, "thresholds": _thresholds(panel.threshold)}
    if panel.kind == "timeseries":
        mode = "off" if panel.threshold is None else "line"
        defaults["custom"] = {"fillOpacity": 10, "thresholdsStyle": {"mode": mode}}
    return {"defaults": defaults, "overrides": []}


def _options(kind: Literal["timeseries", "stat", "bargauge"]) -> Json:
    last_value = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    if kind == "stat":
        return {"colorMode": "value", "graphMode": "area", "reduceOptions": last_value}
    if kind == "bargauge":
        return {
            "displayMode": "gradient",
            "orientation": "horizontal",
            "reduceOptions": last_value,
            "showUnfilled": True,
        }
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def _panel_json(panel: Panel, panel_id: int, grid_pos: Json) -> Json:
    return {
        "datasource": DATASOURCE,
        "description": panel.description,
        "fieldConfig": _field_config(panel),
        "gridPos": grid_pos,
        "id": panel_id,
        "options": _options(panel.kind),
        "targets": [_target(q, chr(ord("A") + i)) for i, q in enumerate(panel.queries)],
        "title": panel.title,
        "type": panel.kind,
    }


def _row_json(row: Row, panel_id: int, grid_pos: Json) -> Json:
    return {
        "collapsed": False,
        "gridPos": grid_pos,
        "id": panel_id,
        "panels": [],
        "title": row.title,
        "type": "row",
    }


def layout(items: Sequence[Item]) -> list[Json]:
    """Panels with ids 1..n and grid positions: rows full width, panels wrapping at 24."""
    result: list[Json] = []
    x = y = line_height = 0
    for panel_id, item in enumerate(items, start=1):
        width, height = (GRID_WIDTH, 1) if isinstance(item, Row) else (item.width, item.height)
        if x + width > GRID_WIDTH:
            x, y, line_height = 0, y + line_height, 0
        grid_pos = {"h": height, "w": width, "x": x, "y": y}
        if isinstance(item, Row):
            result.append(_row_json(item, panel_id, grid_pos))
        else:
            result.append(_panel_json(item, panel_id, grid_pos))
        x, line_height = x + width, max(line_height, height)
    return result


def datasource_variable() -> Json:
    return {
        "current": {"selected": False, "text": "Prometheus", "value": DATASOURCE_UID},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "type": "datasource",
    }


def query_variable(name: str, label: str, query: str) -> Json:
    """A multi-value label_values() variable with an `All` option matching `.*`."""
    return {
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": DATASOURCE,
        "definition": query,
        "hide": 0,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "type": "query",
    }


def dashboard(uid: str, title: str, variables: list[Json], items: Sequence[Item]) -> Json:
    """A whole dashboard; its header links to every dashboard tagged ``salewatch``."""
    return {
        "editable": False,
        "graphTooltip": 1,
        "links": [
            {
                "asDropdown": False,
                "includeVars": False,
                "keepTime": True,
                "tags": [TAG],
                "title": "salewatch",
                "type": "dashboards",
            }
        ],
        "panels": layout(items),
        "refresh": "10s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": [TAG],
        "templating": {"list": [datasource_variable(), *variables]},
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
    }


# -- the dashboards -----------------------------------------------------------------------------


def single(title: str, expr: str, legend: str = "__auto", **options: Any) -> Panel:
    """A panel with one query; `options` are the other Panel fields."""
    return Panel(title, (Query(expr, legend),), **options)


def per_minute(expr: str) -> str:
    return f"{expr} * 60"


def rate_by(labels: str, metric: str, selector: str) -> str:
    return f"sum by ({labels}) (rate({metric}{{{selector}}}[$__rate_interval]))"


def _money_panels() -> list[Item]:
    gmv = f"sum by (currency) (increase(salewatch_gmv_total{{{SLICE}}}[$__range]))"
    paid = f"sum(increase(salewatch_paid_orders_total{{{SLICE}}}[$__range]))"
    aov = f"{gmv} / ignoring (currency) group_left () {paid}"
    gmv_rate = (
        f"sum by (currency) (store_channel_currency:salewatch_gmv:rate1m{{{RECORDED_SLICE}}})"
    )
    paid_rate = f"sum by (channel) (store_channel:salewatch_paid_orders:rate1m{{{RECORDED_SLICE}}})"
    stat = {"kind": "stat", "width": 8, "height": 5}
    return [
        Row("Money"),
        single("GMV in range", gmv, "{{currency}}", **stat),
        single("Paid orders in range", paid, "paid orders", **stat),
        single("Average order value in range", aov, "{{currency}}", **stat),
        single("GMV per minute", per_minute(gmv_rate), "{{currency}}"),
        single("Paid orders per minute by channel", per_minute(paid_rate), "{{channel}}"),
    ]


def _funnel_panels() -> list[Item]:
    by_stage = per_minute(
        f"sum by (stage) (store_channel_stage:salewatch_funnel_events:rate1m{{{RECORDED_SLICE}}})"
    )
    steps = f"store_channel_stage:salewatch_funnel_step_conversion:ratio_rate5m{{{RECORDED_SLICE}}}"
    closed = f"max by (store, channel, stage) (salewatch_conversion_ratio{{{SLICE}}})"
    step_legend = "{{store}} / {{channel}} → {{stage}}"
    return [
        Row("Funnel"),
        single("Funnel events per minute by stage", by_stage, "{{stage}}"),
        single("Funnel now (events per minute)", by_stage, "{{stage}}", kind="bargauge"),
        single(
            "Step conversion by store / channel (5m rates)",
            steps,
            step_legend,
            unit="percentunit",
            description="Rate of a stage over the rate of the previous stage.",
        ),
        single(
            "Step conversion, last closed window",
            closed,
            step_legend,
            unit="percentunit",
            description="What the ConversionDrop detector compares with its baseline.",
        ),
    ]


def _per_store_bars(title: str, metric: str, alertname: str) -> Panel:
    expr = f'sum by (store) ({metric}{{job="salewatch", store=~"$store"}})'
    description = f"SKUs counted here are the ones {alertname} alerts name."
    return single(title, expr, "{{store}}", kind="bargauge", width=6, description=description)


def _alert_and_stock_panels() -> list[Item]:
    stream = 'sum by (alertname, severity) (salewatch_alerts_firing{job="salewatch"})'
    rules = 'sum by (alertname, severity) (ALERTS{alertstate="firing", alertname!="Watchdog"})'
    firing = Panel(
        "Firing alerts by name",
        (
            Query(stream, "{{alertname}} ({{severity}}, stream)"),
            Query(rules, "{{alertname}} ({{severity}}, rules)"),
        ),
        description="Business alerts of the stream detectors, platform alerts of Prometheus.",
    )
    return [
        Row("Alerts and stock"),
        firing,
        _per_store_bars("Out-of-stock SKUs per store", "salewatch_stock_out_skus", "StockOut"),
        _per_store_bars("Low-stock SKUs per store", "salewatch_low_stock_skus", "LowStockSoon"),
    ]


def _data_quality_panels() -> list[Item]:
    job = 'job="salewatch"'
    deadletters = per_minute(rate_by("topic, reason", "salewatch_deadletter_total", job))
    late = per_minute(rate_by("topic", "salewatch_late_events_total", job))
    duplicates = per_minute(rate_by("topic", "salewatch_duplicate_events_total", job))
    return [
        Row("Data quality"),
        single("Dead letters per minute by reason", deadletters, "{{topic}}: {{reason}}", width=8),
        single(
            "Consumer lag by topic",
            "topic:salewatch_consumer_lag_messages:sum",
            "{{topic}}",
            width=8,
            threshold=LAG_ALERT_MESSAGES,
        ),
        Panel(
            "Late and duplicate events per minute",
            (Query(late, "late {{topic}}"), Query(duplicates, "duplicate {{topic}}")),
            width=8,
        ),
    ]


def warroom() -> Json:
    funnel = 'salewatch_funnel_events_total{job="salewatch"'
    variables = [
        query_variable("store", "Store", f"label_values({funnel}}}, store)"),
        query_variable("channel", "Channel", f'label_values({funnel}, store=~"$store"}}, channel)'),
    ]
    items = [
        *_money_panels(),
        *_funnel_panels(),
        *_alert_and_stock_panels(),
        *_data_quality_panels(),
    ]
    return dashboard(WARROOM_DASHBOARD_UID, "salewatch / war room", variables, items)


def platform() -> Json:
    variables = [
        query_variable("instance", "Worker", 'label_values(up{job="salewatch"}, instance)'),
    ]
    messages = rate_by("topic", "salewatch_messages_total", WORKERS)
    deadletters = rate_by("topic", "salewatch_deadletter_total", WORKERS)
    # As topic:salewatch_deadletter:ratio_rate5m: dead letters over valid + dead-lettered events.
    valid_or_dead = (
        f"rate(salewatch_events_total{{{WORKERS}}}[$__rate_interval])"
        f" or rate(salewatch_deadletter_total{{{WORKERS}}}[$__rate_interval])"
    )
    deadletter_ratio = f"{deadletters} / (sum by (topic) ({valid_or_dead}) > 0)"
    events = rate_by("topic, type", "salewatch_events_total", WORKERS)
    deliveries = rate_by("result", "salewatch_alert_notifications_total", WORKERS)
    steps = rate_by("step", "salewatch_processed_events_total", WORKERS)
    windows = per_minute(
        f"sum(rate(salewatch_windows_closed_total{{{WORKERS}}}[$__rate_interval]))"
    )
    lag = f"sum by (topic) (salewatch_consumer_lag_messages{{{WORKERS}}})"
    silence = f"time() - max by (topic) (salewatch_last_event_timestamp_seconds{{{WORKERS}}})"
    firing = 'count(ALERTS{alertstate="firing", alertname=~"Salewatch.*"}) or vector(0)'
    stat = {"kind": "stat", "width": 6, "height": 5}
    items: list[Item] = [
        single("Workers up", f"sum(up{{{WORKERS}}})", "up", **stat),
        single("Platform alerts firing", firing, "firing", **stat),
        single("Seconds since the last event, by topic", silence, "{{topic}}", unit="s", height=5),
        single("Worker up, by instance", f"up{{{WORKERS}}}", "{{instance}}"),
        single("Messages consumed per second by topic", messages, "{{topic}}"),
        single("Consumer lag by topic", lag, "{{topic}}", threshold=LAG_ALERT_MESSAGES),
        single(
            "Dead-letter ratio by topic",
            deadletter_ratio,
            "{{topic}}",
            unit="percentunit",
            threshold=DEADLETTER_ALERT_RATIO,
        ),
        single("Valid events per second by topic and type", events, "{{topic}} {{type}}"),
        single("Events per second through each pipeline step", steps, "{{step}}"),
        single("Windows closed per minute", windows, "windows"),
        single("Alert deliveries to Alertmanager per second", deliveries, "{{result}}"),
    ]
    return dashboard(PLATFORM_DASHBOARD_UID, "salewatch / platform", variables, items)


def build_dashboards() -> dict[str, Json]:
    """Every dashboard, keyed by its file name."""
    return {f"{board['uid']}.json": board for board in (warroom(), platform())}


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
