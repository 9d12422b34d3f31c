"""What the war room shows, computed from what a worker serves (pure: no I/O here).

Live totals (GMV, paid orders, the funnel so far) are the worker's counters, which move the
moment an order is processed; per-minute figures (the GMV sparkline, UV, visit depth,
payment failure, refund and complaint rates, repurchase rate, ROI) come from closed
windows, the exact records of `salewatch.windows`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from streams.funnel.aggregates import STAGES
from streams.inventory.stock import StockStatus
from warroom.exposition import Exposition

__all__ = ["RATE_WINDOWS", "Board", "ChannelRow", "FiringAlert", "build_board"]

RATE_WINDOWS = 5  # closed windows the failure and refund rates are pooled over
SPARK_WINDOWS = 30  # closed windows in the GMV sparkline


@dataclass(frozen=True)
class ChannelRow:
    channel: str
    counts: dict[str, float]  # stage -> events so far (live counters)
    uv: int  # unique users of the latest closed window, summed over stores
    payment_failure_rate: float | None  # over the last RATE_WINDOWS closed windows
    refund_rate: float | None
    visit_depth: float | None = None  # page views per visitor, latest closed window
    complaint_rate: float | None = None  # complaints / paid orders, pooled like the others
    repurchase_rate: float | None = None  # returning / paying users, pooled
    roi: float | None = None  # GMV / campaign spend (in the spend's currency), pooled

    def conversion(self, stage: str) -> float | None:
        """Step conversion into `stage` so far; None for the first stage or without a base."""
        index = STAGES.index(stage)
        base = self.counts.get(STAGES[index - 1], 0.0) if index else 0.0
        return self.counts.get(stage, 0.0) / base if base else None


@dataclass(frozen=True)
class FiringAlert:
    alertname: str
    severity: str
    target: str  # the labels that say where: store, channel, stage, sku
    age_s: float
    summary: str


@dataclass
class Board:
    worker: str
    healthy: bool | None  # None: the worker did not answer
    gmv: dict[str, float] = field(default_factory=dict)  # currency -> so far
    paid_orders: float = 0.0
    paid_by_currency: dict[str, float] = field(default_factory=dict)
    gmv_per_window: list[tuple[int, float]] = field(default_factory=list)  # main currency
    window_ms: int | None = None
    channels: list[ChannelRow] = field(default_factory=list)
    stock: list[StockStatus] = field(default_factory=list)  # most urgent first
    stock_complete: bool = True
    alerts: list[FiringAlert] = field(default_factory=list)
    lag_messages: float = 0.0
    dead_letters: float = 0.0
    late_events: float = 0.0
    windows_closed: float = 0.0
    watermark_lag_s: float | None = None  # wall clock minus the event-time watermark
    problems: list[str] = field(default_factory=list)
    note: str = ""  # a line from whoever runs the view (the demo: the simulation's state)

    @property
    def currency(self) -> str:
        return max(self.gmv, key=lambda c: self.gmv[c]) if self.gmv else "CNY"

    @property
    def aov(self) -> float | None:
        """GMV in the main currency per order paid in it."""
        paid = self.paid_by_currency.get(self.currency, 0.0)
        return self.gmv.get(self.currency, 0.0) / paid if paid else None


def build_board(
    worker: str,
    now_ms: int,
    health: bool | None,
    metrics: Exposition,
    windows: Mapping[tuple[str, str], Mapping[str, Any]],
    stock: Iterable[Mapping[str, Any]],
    alerts: Mapping[str, Any] | None,
) -> Board:
    """`windows`: `GET /api/windows/{store}/{channel}` answers; `stock`: the answers of
    `GET /api/stock/{store}`; `alerts`: the answer of `GET /api/alerts`."""
    board = Board(worker, health)
    board.gmv = metrics.by("salewatch_gmv_total", "currency")
    board.paid_orders = metrics.total("salewatch_paid_orders_total")
    board.paid_by_currency = metrics.by("salewatch_paid_orders_total", "currency")
    board.lag_messages = metrics.total("salewatch_consumer_lag_messages")
    board.dead_letters = metrics.total("salewatch_deadletter_total")
    board.late_events = metrics.total("salewatch_late_events_total")
    board.windows_closed = metrics.total("salewatch_windows_closed_total")
    watermark = metrics.total("salewatch_watermark_timestamp_seconds")
    if watermark > 0:
        board.watermark_lag_s = max(0.0, now_ms / 1000 - watermark)
    closed = [record for answer in windows.values() for record in answer.get("closed", ())]
    if closed:
        board.window_ms = closed[0]["window_end"] - closed[0]["window_start"]
    board.gmv_per_window = _gmv_per_window(closed, board.currency)
    board.channels = _channels(metrics, closed)
    answers = list(stock)
    skus = (StockStatus.from_dict(sku) for answer in answers for sku in answer["skus"])
    board.stock = sorted(skus, key=StockStatus.urgency)
    board.stock_complete = all(a.get("complete", True) for a in answers)
    if alerts is not None:
        board.alerts = [_firing(record, now_ms) for record in alerts["firing"]]
        board.alerts.sort(key=lambda a: (a.severity != "critical", -a.age_s))
    return board


def _gmv_per_window(closed: list[Mapping[str, Any]], currency: str) -> list[tuple[int, float]]:
    per_start: dict[int, Decimal] = defaultdict(Decimal)
    for record in closed:
        per_start[record["window_start"]] += Decimal(record["gmv"].get(currency, "0"))
    starts = sorted(per_start)[-SPARK_WINDOWS:]
    return [(start, float(per_start[start])) for start in starts]


def _channels(metrics: Exposition, closed: list[Mapping[str, Any]]) -> list[ChannelRow]:
    counts: dict[str, dict[str, float]] = defaultdict(dict)
    for stage in STAGES:
        per_channel = metrics.by("salewatch_funnel_events_total", "channel", stage=stage)
        for channel, value in per_channel.items():
            counts[channel][stage] = value
    by_channel: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in closed:
        by_channel[record["channel"]].append(record)
    rows = []
    for channel in sorted(counts, key=lambda c: -counts[c].get("impression", 0.0)):
        records = by_channel.get(channel, [])
        starts = sorted({r["window_start"] for r in records})
        latest = [r for r in records if starts and r["window_start"] == starts[-1]]
        pooled = [r for r in records if r["window_start"] in starts[-RATE_WINDOWS:]]
        paid = sum(r["counts"]["pay"] for r in pooled)
        failed = sum(r["payment_failed"] for r in pooled)
        refunds = sum(r["refund_requested"] for r in pooled)
        # .get: records of workers from before the operations KPIs
        complaints = sum(r.get("complaints", 0) for r in pooled)
        returning = sum(r.get("returning_buyers") or 0 for r in pooled)
        paying = returning + sum(r.get("new_buyers") or 0 for r in pooled)
        visitors = sum(r.get("visitors", 0) for r in latest)
        rows.append(
            ChannelRow(
                channel=channel,
                counts=counts[channel],
                uv=sum(r["users"]["impression"] for r in latest),
                payment_failure_rate=failed / (paid + failed) if paid + failed else None,
                refund_rate=refunds / paid if paid else None,
                visit_depth=_ratio(sum(r.get("page_views", 0) for r in latest), visitors),
                complaint_rate=_ratio(complaints, paid),
                repurchase_rate=_ratio(returning, paying),
                roi=_roi(pooled),
            )
        )
    return rows


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _roi(records: list[Mapping[str, Any]]) -> float | None:
    """GMV over spend, both in the spend's currency, over the windows that have spend."""
    gmv, spend = Decimal(0), Decimal(0)
    for record in records:
        for currency, amount in (record.get("spend") or {}).items():
            spend += Decimal(amount)
            gmv += Decimal(record["gmv"].get(currency, "0"))
    return float(gmv / spend) if spend else None


def _firing(record: Mapping[str, Any], now_ms: int) -> FiringAlert:
    labels = record["labels"]
    where = [labels[name] for name in ("store_id", "channel", "stage", "sku") if name in labels]
    started = datetime.fromisoformat(record["startsAt"].replace("Z", "+00:00"))
    return FiringAlert(
        alertname=labels["alertname"],
        severity=labels.get("severity", ""),
        target=" ".join(where),
        age_s=max(0.0, now_ms / 1000 - started.timestamp()),
        summary=record["annotations"].get("summary", ""),
    )
