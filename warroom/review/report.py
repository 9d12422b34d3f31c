"""The review as one self-contained HTML page: tables, and the charts inlined as data URIs
(no request leaves the page). Totals carry their exact value in `data-value`."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo
from decimal import Decimal
from html import escape

from streams.funnel.aggregates import STAGES
from warroom.review.charts import CHARTS
from warroom.review.sale import SaleReview, Tally

__all__ = ["render_html"]

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
h1 { margin-bottom: 0.2em; } .range { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 14px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.critical { color: #c00; font-weight: bold; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
"""
# the page says when its charts are drawn: a headless browser checks it without a network
_CHART_CHECK = """
window.addEventListener("load", () => {
  const charts = [...document.querySelectorAll("img.chart")];
  document.body.dataset.chartsDrawn = charts.filter(i => i.complete && i.naturalWidth > 0).length;
});
"""


def _clock(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def _when(epoch_ms: int, tz: tzinfo) -> str:
    return _clock(datetime.fromtimestamp(epoch_ms / 1000, tz), tz)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _row(*cells: str, header: bool = False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag}>{cell}</{tag}>" for cell in cells) + "</tr>"


def _total(name: str, label: str, value: object, shown: str) -> str:
    return (f'<tr><th>{escape(label)}</th><td data-total="{name}" data-value="{value}">'
            f"{escape(shown)}</td></tr>")  # fmt: skip


def _totals(review: SaleReview) -> str:
    total = review.total
    rows = [_total(stage, f"{stage} events", total.counts[stage], f"{total.counts[stage]:,}")
            for stage in STAGES]  # fmt: skip
    rows.append(_total("paid_orders", "paid orders", total.paid_orders, f"{total.paid_orders:,}"))
    for currency, gmv in sorted(total.gmv.items()):
        rows.append(_total(f"gmv.{currency}", f"GMV ({currency})", gmv, _money(gmv)))
        aov = total.aov(currency)
        rows.append(_total(f"aov.{currency}", f"AOV ({currency})", aov, _money(aov)))
    rows += [
        _total("payment_failed", "payment failures", total.payment_failed,
               f"{total.payment_failed:,}"),
        _total("payment_failure_rate", "payment failure rate", total.payment_failure_rate,
               _percent(total.payment_failure_rate)),
        _total("refund_requested", "refund requests", total.refund_requested,
               f"{total.refund_requested:,}"),
        _total("refund_rate", "refund rate", total.refund_rate, _percent(total.refund_rate)),
        _total("refund_amount", "refund requests' amount", total.refund_amount,
               _money(total.refund_amount)),
        _total("returns", "returns", total.returns, f"{total.returns:,}"),
        _total("complaints", "complaints", total.complaints, f"{total.complaints:,}"),
        _total("aftersales_rate", "after-sales rate (refunds + returns per paid order)",
               total.aftersales_rate, _percent(total.aftersales_rate)),
        _total("complaint_rate", "complaint rate", total.complaint_rate,
               _percent(total.complaint_rate)),
        _total("new_buyers", "new buyers (per window, summed)", total.new_buyers,
               f"{total.new_buyers:,}"),
        _total("returning_buyers", "returning buyers (per window, summed)",
               total.returning_buyers, f"{total.returning_buyers:,}"),
        _total("repurchase_rate", "repurchase rate", total.repurchase_rate,
               _percent(total.repurchase_rate)),
        _total("peak_uv", f"peak UV per {review.window_ms / 60_000:g}-minute window",
               max(t.users for t in review.per_window.values()),
               f"{max(t.users for t in review.per_window.values()):,}"),
        *(row for currency, spend in sorted(total.spend.items()) for row in (
            _total(f"spend.{currency}", f"campaign spend ({currency})", spend, _money(spend)),
            _total(f"roi.{currency}", f"ROI (GMV / spend, {currency})", total.roi(currency),
                   _ratio(total.roi(currency))),
        )),
        _total("alerts", "alerts fired", len(review.alerts), str(len(review.alerts))),
        _total("stockouts", "stock-outs", len(review.stockouts), str(len(review.stockouts))),
    ]  # fmt: skip
    return "<table id=totals>" + "".join(rows) + "</table>"


def _table(table_id: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    body = "".join(_row(*cells) for cells in rows)
    return f"<table id={table_id}>{_row(*header, header=True)}{body}</table>"


def _funnel_table(
    table_id: str, title: str, tallies: list[tuple[str, Tally]], currency: str
) -> str:
    header = [title, *STAGES, *(f"→ {s}" for s in STAGES[1:]), "paid", f"GMV ({currency})",
              "AOV", "pay fail", "refund", "complaint", "repeat", "ROI"]  # fmt: skip
    rows = (
        [escape(name), *(f"{t.counts[s]:,}" for s in STAGES),
         *(_percent(t.conversion(s)) for s in STAGES[1:]), f"{t.paid_orders:,}",
         _money(t.gmv.get(currency)), _money(t.aov(currency)),
         _percent(t.payment_failure_rate), _percent(t.refund_rate),
         _percent(t.complaint_rate), _percent(t.repurchase_rate), _ratio(t.roi(currency))]
        for name, t in tallies
    )  # fmt: skip
    return _table(table_id, header, rows)


def _stockouts(review: SaleReview, tz: tzinfo) -> str:
    if not review.stockouts:
        return "<p>No SKU ran out of stock.</p>"
    header = ["store", "SKU", "out from", "until", "minutes out", "units/min before",
              "est. lost units"]  # fmt: skip
    rows = (
        [escape(s.store_id), escape(s.sku), _when(s.start_ms, tz),
         "still out" if s.ongoing else _when(s.end_ms, tz), f"{s.minutes:.1f}",
         "-" if s.velocity_per_min is None else f"{s.velocity_per_min:.2f}",
         "-" if s.lost_units is None else f"{s.lost_units:,.0f}"]
        for s in review.stockouts
    )  # fmt: skip
    return _table("stockouts", header, rows)


def _alerts(review: SaleReview, tz: tzinfo) -> str:
    if not review.alerts:
        return "<p>No alert fired.</p>"
    header = ["alert", "severity", "where", "condition from", "until", "fired (wall clock)",
              "resolved (wall clock)", "summary", "runbook"]  # fmt: skip
    rows = (
        [escape(a.alertname), f'<span class="{escape(a.severity)}">{escape(a.severity)}</span>',
         escape(a.where), _when(a.event_start_ms, tz),
         "still firing" if a.event_end_ms is None else _when(a.event_end_ms, tz),
         _clock(a.fired_at, tz), "-" if a.resolved_at is None else _clock(a.resolved_at, tz),
         escape(a.summary), f'<a href="{escape(a.runbook_url)}">runbook</a>']
        for a in review.alerts
    )  # fmt: skip
    return _table("alerts", header, rows)


def _chart(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode()
    alt = escape(CHARTS[name][0])
    return f'<img class="chart" id="{name}" alt="{alt}" src="data:image/png;base64,{data}">'


def render_html(
    review: SaleReview, charts: dict[str, bytes], tz: tzinfo, top_stores: int, title: str
) -> str:
    currency = review.currency
    stores = review.top_stores(top_stores)
    minutes = (review.end_ms - review.first_ms) / 60_000
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>{escape(title)}</h1>
<p class="range">{_when(review.first_ms, tz)} to {_when(review.end_ms, tz)} ({tz}), {minutes:g}
minutes in {len(review.per_window)} windows of {review.window_ms / 60_000:g} min,
{len(review.stores)} stores, {len(review.channels)} channels</p>
<h2>Totals</h2>
{_totals(review)}
<h2>Minute by minute</h2>
{_chart("sales.png", charts["sales.png"])}
{_chart("rates.png", charts["rates.png"])}
<h2>Funnel and conversion</h2>
{_chart("funnel.png", charts["funnel.png"])}
{_funnel_table("channels", "channel", list(review.channels.items()), currency)}
{_funnel_table("stores", f"top {len(stores)} stores", stores, currency)}
<h2>Stock-outs</h2>
{_chart("stockouts.png", charts["stockouts.png"])}
{_stockouts(review, tz)}
<h2>Alerts</h2>
{_alerts(review, tz)}
<script>{_CHART_CHECK}</script>
</body></html>
"""
