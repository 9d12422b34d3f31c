"""The sale as the review tells it, from window and alert records (pure: no I/O here).

Every figure adds up final window records, which are exact (docs/architecture.md): counts,
paid orders, GMV to the cent. UV per minute is the sum of the store x channel windows'
unique users (a user seen in two channels counts twice); sketches cannot be added up
exactly across windows, so the review shows no UV total. New and returning buyers are
distinct per window, so their sums count a buyer once per window paid in (buyer-windows).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from alerts.links import runbook_url
from streams.funnel.aggregates import STAGES
from warroom.review.errors import ReviewError

__all__ = ["AlertEpisode", "PhaseSpan", "SaleReview", "StockOutSpan", "Tally", "build_review"]


def paid_orders_by_currency(record: Mapping[str, Any]) -> dict[str, int]:
    """A window's paid orders per currency; a record from before that field had one
    currency's orders only if its GMV has one currency (else none can be told apart)."""
    by_currency = record.get("paid_orders_by_currency")
    if by_currency is not None:
        return dict(by_currency)
    gmv = record["gmv"]
    return {next(iter(gmv)): record["paid_orders"]} if len(gmv) == 1 else {}


@dataclass
class Tally:
    """Window records added up: one window of the sale, a channel, a store, or all of it."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    users: int = 0  # impression UV, summed over the windows added
    gmv: dict[str, Decimal] = field(default_factory=dict)
    paid_orders: int = 0
    paid_by_currency: dict[str, int] = field(default_factory=dict)  # for AOV per currency
    payment_failed: int = 0
    refund_requested: int = 0
    refund_amount: Decimal = Decimal(0)
    returns: int = 0
    complaints: int = 0
    new_buyers: int = 0  # per window, summed: buyer-windows
    returning_buyers: int = 0
    spend: dict[str, Decimal] = field(default_factory=dict)  # campaign spend by currency
    spent_gmv: dict[str, Decimal] = field(default_factory=dict)  # GMV of windows with spend
    windows: int = 0

    def add(self, record: Mapping[str, Any]) -> None:
        for stage in STAGES:
            self.counts[stage] += record["counts"][stage]
        self.users += record["users"]["impression"]
        for currency, amount in record["gmv"].items():
            self.gmv[currency] = self.gmv.get(currency, Decimal(0)) + Decimal(amount)
        self.paid_orders += record["paid_orders"]
        for currency, paid in paid_orders_by_currency(record).items():
            self.paid_by_currency[currency] = self.paid_by_currency.get(currency, 0) + paid
        self.payment_failed += record["payment_failed"]
        self.refund_requested += record["refund_requested"]
        # .get: windows recorded before the operations KPIs
        self.refund_amount += Decimal(record.get("refund_amount", "0"))
        self.returns += record.get("returns", 0)
        self.complaints += record.get("complaints", 0)
        self.new_buyers += record.get("new_buyers") or 0
        self.returning_buyers += record.get("returning_buyers") or 0
        for currency, amount in (record.get("spend") or {}).items():
            self.spend[currency] = self.spend.get(currency, Decimal(0)) + Decimal(amount)
            gmv = Decimal(record["gmv"].get(currency, "0"))
            self.spent_gmv[currency] = self.spent_gmv.get(currency, Decimal(0)) + gmv
        self.windows += 1

    def conversion(self, stage: str) -> float | None:
        index = STAGES.index(stage)
        base = self.counts[STAGES[index - 1]] if index else 0
        return self.counts[stage] / base if base else None

    def aov(self, currency: str) -> Decimal | None:
        """GMV in `currency` per order paid in it."""
        paid = self.paid_by_currency.get(currency, 0)
        if not paid:
            return None
        return (self.gmv.get(currency, Decimal(0)) / paid).quantize(Decimal("0.01"))

    @property
    def payment_failure_rate(self) -> float | None:
        attempts = self.counts["pay"] + self.payment_failed
        return self.payment_failed / attempts if attempts else None

    @property
    def refund_rate(self) -> float | None:
        return self.refund_requested / self.counts["pay"] if self.counts["pay"] else None

    @property
    def aftersales_rate(self) -> float | None:
        """(Refund requests + returns) per paid order."""
        paid = self.counts["pay"]
        return (self.refund_requested + self.returns) / paid if paid else None

    @property
    def complaint_rate(self) -> float | None:
        return self.complaints / self.counts["pay"] if self.counts["pay"] else None

    @property
    def repurchase_rate(self) -> float | None:
        """Returning buyers / paying buyers, per window summed."""
        buyers = self.new_buyers + self.returning_buyers
        return self.returning_buyers / buyers if buyers else None

    def roi(self, currency: str) -> float | None:
        """GMV in the currency over campaign spend in it, of the windows with spend."""
        spend = self.spend.get(currency)
        return float(self.spent_gmv[currency] / spend) if spend else None


@dataclass(frozen=True)
class AlertEpisode:
    """One alert from firing to resolved (times: wall clock of detection and resolution,
    and event time of the condition, as `salewatch.alerts` records them)."""

    alertname: str
    severity: str
    labels: dict[str, str]  # the alert's own labels: store_id, channel, stage, sku
    summary: str
    runbook_url: str
    fired_at: datetime
    resolved_at: datetime | None
    event_start_ms: int
    event_end_ms: int | None
    annotations: dict[str, str]

    @property
    def where(self) -> str:
        return " ".join(
            self.labels[k] for k in ("store_id", "channel", "stage", "sku") if k in self.labels
        )


@dataclass(frozen=True)
class StockOutSpan:
    """A SKU out of stock (event time), and the units it would have sold meanwhile at the
    rate it sold at when it ran out."""

    store_id: str
    sku: str
    start_ms: int
    end_ms: int
    ongoing: bool  # still out when the review's range ends
    velocity_per_min: float | None

    @property
    def minutes(self) -> float:
        return (self.end_ms - self.start_ms) / 60_000

    @property
    def lost_units(self) -> float | None:
        return None if self.velocity_per_min is None else self.minutes * self.velocity_per_min


@dataclass(frozen=True)
class PhaseSpan:
    name: str
    start_ms: int
    end_ms: int


@dataclass
class SaleReview:
    first_ms: int  # [first_ms, end_ms): the windows reviewed
    end_ms: int
    window_ms: int
    per_window: dict[int, Tally]
    channels: dict[str, Tally]
    stores: dict[str, Tally]
    total: Tally
    alerts: list[AlertEpisode]
    stockouts: list[StockOutSpan]
    phases: list[PhaseSpan]

    @property
    def currency(self) -> str:
        """The currency of most GMV: the charts' currency."""
        gmv = self.total.gmv
        return max(gmv, key=lambda c: gmv[c]) if gmv else "CNY"

    def top_stores(self, limit: int) -> list[tuple[str, Tally]]:
        currency = self.currency
        ranked = sorted(
            self.stores.items(), key=lambda item: (-item[1].gmv.get(currency, Decimal(0)), item[0])
        )
        return ranked[:limit]


def build_review(
    windows: Iterable[Mapping[str, Any]],
    alert_records: Iterable[Mapping[str, Any]],
    phases: Iterable[PhaseSpan] = (),
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> SaleReview:
    """The review of the windows starting in [since_ms, until_ms) and the alerts whose
    condition overlaps them (records in topic order)."""
    per_window: dict[int, Tally] = defaultdict(Tally)
    channels: dict[str, Tally] = defaultdict(Tally)
    stores: dict[str, Tally] = defaultdict(Tally)
    total = Tally()
    window_ms = 0
    for record in windows:
        start = record["window_start"]
        if (since_ms is not None and start < since_ms) or (
            until_ms is not None and start >= until_ms
        ):
            continue
        window_ms = record["window_end"] - start
        for tally in (
            per_window[start],
            channels[record["channel"]],
            stores[record["store_id"]],
            total,
        ):
            tally.add(record)
    if not per_window:
        raise ReviewError("no window records in the range")
    first_ms, end_ms = min(per_window), max(per_window) + window_ms
    episodes = [
        e
        for e in _episodes(alert_records)
        if e.event_start_ms < end_ms and (e.event_end_ms or end_ms) >= first_ms
    ]
    return SaleReview(
        first_ms=first_ms,
        end_ms=end_ms,
        window_ms=window_ms,
        per_window=dict(sorted(per_window.items())),
        channels=dict(sorted(channels.items(), key=lambda item: -item[1].counts["impression"])),
        stores=dict(stores),
        total=total,
        alerts=episodes,
        stockouts=_stockouts(episodes, first_ms, end_ms),
        phases=[p for p in phases if p.start_ms < end_ms and p.end_ms > first_ms],
    )


def _moment(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _ms(iso: str) -> int:
    return round(_moment(iso).timestamp() * 1000)


def _episodes(records: Iterable[Mapping[str, Any]]) -> list[AlertEpisode]:
    """Pair each firing record with the resolved record of the same label set after it."""
    open_: dict[str, Mapping[str, Any]] = {}
    done: list[AlertEpisode] = []
    for record in records:
        fingerprint = record["fingerprint"]
        if record["status"] == "firing":
            open_.setdefault(fingerprint, record)  # a re-published firing alert: same episode
        elif fingerprint in open_:
            done.append(_episode(open_.pop(fingerprint), record))
    done.extend(_episode(record, None) for record in open_.values())
    return sorted(done, key=lambda e: (e.event_start_ms, e.alertname, e.where))


def _episode(fired: Mapping[str, Any], resolved: Mapping[str, Any] | None) -> AlertEpisode:
    labels = dict(fired["labels"])
    alertname = labels.pop("alertname")
    severity = labels.pop("severity", "")
    labels.pop("source", None)
    annotations = dict(fired["annotations"])
    return AlertEpisode(
        alertname=alertname,
        severity=severity,
        labels=labels,
        summary=annotations.get("summary", ""),
        runbook_url=annotations.get("runbook_url") or runbook_url(alertname),
        fired_at=_moment(fired["startsAt"]),
        resolved_at=None if resolved is None else _moment(resolved["endsAt"]),
        event_start_ms=_ms(fired["eventStartsAt"]),
        event_end_ms=None
        if resolved is None or resolved.get("eventEndsAt") is None
        else _ms(resolved["eventEndsAt"]),
        annotations=annotations,
    )


def _stockouts(episodes: list[AlertEpisode], first_ms: int, end_ms: int) -> list[StockOutSpan]:
    spans = []
    for e in episodes:
        if e.alertname != "StockOut":
            continue
        velocity = e.annotations.get("velocity_per_min")
        spans.append(
            StockOutSpan(
                store_id=e.labels.get("store_id", ""),
                sku=e.labels.get("sku", ""),
                start_ms=max(e.event_start_ms, first_ms),
                end_ms=min(e.event_end_ms or end_ms, end_ms),
                ongoing=e.event_end_ms is None or e.event_end_ms > end_ms,
                velocity_per_min=None if not velocity else float(velocity),
            )
        )
    return spans
