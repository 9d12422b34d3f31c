"""The review's charts as PNG (matplotlib figures drawn straight to files: no pyplot, no
display, nothing global)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime, tzinfo
from decimal import Decimal

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from streams.funnel.aggregates import STAGES
from warroom.review.sale import SaleReview, Tally

__all__ = ["CHARTS", "render_chart"]

_PHASE_COLOURS = ("#fde2b3", "#cfe8fc", "#d9f2d0", "#f3d4f5")
_DPI = 100


def render_chart(name: str, review: SaleReview, tz: tzinfo, top_stores: int) -> bytes:
    """One chart of CHARTS as PNG bytes."""
    figure = CHARTS[name][1](review, tz, top_stores)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return buffer.getvalue()


def _times(review: SaleReview, tz: tzinfo) -> list[datetime]:
    return [datetime.fromtimestamp(start / 1000, tz) for start in review.per_window]


def _shade(ax: Axes, review: SaleReview, tz: tzinfo, label: bool) -> None:
    """Campaign phases as shaded spans, alerts as red ticks at their event start."""
    for i, phase in enumerate(review.phases):
        ax.axvspan(
            datetime.fromtimestamp(max(phase.start_ms, review.first_ms) / 1000, tz),
            datetime.fromtimestamp(min(phase.end_ms, review.end_ms) / 1000, tz),
            color=_PHASE_COLOURS[i % len(_PHASE_COLOURS)], alpha=0.6, zorder=0,
            label=phase.name if label else None,
        )  # fmt: skip
    for alert in review.alerts:
        ax.axvline(datetime.fromtimestamp(alert.event_start_ms / 1000, tz), color="#d62728",
                   alpha=0.35, linewidth=1, zorder=1)  # fmt: skip


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _time_axis(ax: Axes, tz: tzinfo) -> None:
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))
    ax.grid(axis="y", alpha=0.3)


def _per_window(
    title: str, series: list[tuple[str, Callable[[Tally, str], float | None], str]]
) -> Callable[[SaleReview, tzinfo, int], Figure]:
    """A figure with one panel per series over the sale's windows."""

    def draw(review: SaleReview, tz: tzinfo, _: int) -> Figure:
        figure = Figure(figsize=(11, 2.4 * len(series)))
        axes = figure.subplots(len(series), 1, sharex=True)
        times = _times(review, tz)
        width = review.window_ms / 86_400_000 * 0.9  # bar width in days
        for i, (ax, (label, value, colour)) in enumerate(zip(axes, series, strict=True)):
            values = [value(t, review.currency) for t in review.per_window.values()]
            ax.bar(times, [v or 0 for v in values], width=width, color=colour, align="edge")
            ax.set_ylabel(label.format(currency=review.currency))
            _shade(ax, review, tz, label=i == 0)
            _time_axis(ax, tz)
        if review.phases:
            axes[0].legend(loc="upper left", fontsize=8)
        axes[0].set_title(title.format(minutes=review.window_ms / 60_000))
        axes[-1].set_xlabel(f"event time ({tz})")
        figure.tight_layout()
        return figure

    return draw


def _funnel(review: SaleReview, tz: tzinfo, top_stores: int) -> Figure:
    groups = [("channels", list(review.channels.items())),
              ("top stores by GMV", review.top_stores(top_stores))]  # fmt: skip
    figure = Figure(figsize=(11, 3.8))
    axes = figure.subplots(1, 2)
    steps = STAGES[1:]
    for ax, (title, tallies) in zip(axes, groups, strict=True):
        width = 0.8 / max(1, len(tallies))
        for i, (name, tally) in enumerate(tallies):
            offsets = [s + i * width for s in range(len(steps))]
            ax.bar(offsets, [tally.conversion(s) or 0.0 for s in steps], width=width, label=name)
        ax.set_xticks([s + 0.4 - width / 2 for s in range(len(steps))],
                      [f"→ {s}" for s in steps])  # fmt: skip
        ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
        ax.set_title(f"step conversion, {title}")
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def _stockouts(review: SaleReview, tz: tzinfo, _: int) -> Figure:
    spans = review.stockouts
    figure = Figure(figsize=(11, 1.2 + 0.35 * max(1, len(spans))))
    ax = figure.subplots()
    start = datetime.fromtimestamp(review.first_ms / 1000, tz)
    end = datetime.fromtimestamp(review.end_ms / 1000, tz)
    ax.set_xlim(start, end)
    _shade(ax, review, tz, label=False)
    if not spans:
        ax.text(0.5, 0.5, "no stock-outs", transform=ax.transAxes, ha="center", va="center")
        ax.set_yticks([])
    for row, span in enumerate(spans):
        left = mdates.date2num(datetime.fromtimestamp(span.start_ms / 1000, tz))
        right = mdates.date2num(datetime.fromtimestamp(span.end_ms / 1000, tz))
        ax.broken_barh([(left, right - left)], (row - 0.4, 0.8), color="#d62728")
        lost = "" if span.lost_units is None else f"  ~{span.lost_units:,.0f} units lost"
        ax.text(right, row, f" {span.minutes:.1f} min{lost}", va="center", fontsize=8)
    if spans:
        ax.set_yticks(range(len(spans)), [f"{s.store_id} {s.sku}" for s in spans])
        ax.invert_yaxis()
    ax.set_title("out of stock (event time)")
    _time_axis(ax, tz)
    figure.tight_layout()
    return figure


# file name -> (what it shows, how it is drawn)
CHARTS: dict[str, tuple[str, Callable[[SaleReview, tzinfo, int], Figure]]] = {
    "sales.png": (
        "GMV, paid orders and UV per window, campaign phases shaded, alerts marked",
        _per_window(
            "the sale per {minutes:g}-minute window",
            [
                ("GMV ({currency})", lambda t, c: float(t.gmv.get(c, 0)), "#2ca02c"),
                ("paid orders", lambda t, _: t.paid_orders, "#1f77b4"),
                ("UV (impressions)", lambda t, _: t.users, "#9467bd"),
            ],
        ),
    ),
    "funnel.png": ("step conversion per channel and per top store", _funnel),
    "rates.png": (
        "AOV, payment failure and refund rates per window",
        _per_window(
            "order value and failures per {minutes:g}-minute window",
            [
                (
                    "AOV",
                    lambda t, c: _float(t.aov(c)),
                    "#17becf",
                ),
                ("payment failure rate", lambda t, _: t.payment_failure_rate, "#d62728"),
                ("refund rate", lambda t, _: t.refund_rate, "#ff7f0e"),
            ],
        ),
    ),
    "stockouts.png": ("stock-out timeline per SKU, with estimated lost sales", _stockouts),
}
