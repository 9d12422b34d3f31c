"""The war room drawn with rich: a full screen on a terminal, one plain line otherwise."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from streams.funnel.aggregates import STAGES
from warroom.board import RATE_WINDOWS, Board

__all__ = ["plain_line", "render", "sparkline"]

_BARS = "▁▂▃▄▅▆▇█"
_ALERT_ROWS = 12
_STOCK_ROWS = 12


def sparkline(values: list[float]) -> str:
    """One block character per value, scaled from 0 to the largest."""
    top = max(values, default=0.0)
    if top <= 0:
        return _BARS[0] * len(values)
    return "".join(
        _BARS[min(len(_BARS) - 1, int(v / top * (len(_BARS) - 1) + 0.5))] for v in values
    )


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


def _header(board: Board) -> Text:
    state = {True: ("healthy", "green"), False: ("UNHEALTHY", "bold red"),
             None: ("NOT ANSWERING", "bold red")}[board.healthy]  # fmt: skip
    text = Text.assemble(("salewatch war room  ", "bold"), (board.worker + "  "), state)
    if board.watermark_lag_s is not None:
        text.append(f"  event time {_age(board.watermark_lag_s)} behind")
    if board.note:
        text.append(f"  {board.note}", style="cyan")
    return text


def _gmv(board: Board) -> Panel:
    currency = board.currency
    values = [value for _, value in board.gmv_per_window]
    minute = "window" if board.window_ms != 60_000 else "minute"
    lines = [
        Text.assemble(
            ("GMV ", "bold"),
            (f"{currency} {_money(board.gmv.get(currency, 0.0))}", "bold green"),
            f"   paid orders {board.paid_orders:,.0f}",
            f"   AOV {'-' if board.aov is None else _money(board.aov)}",
        ),
        Text.assemble(
            f"GMV per {minute} ",
            (sparkline(values), "green"),
            f"  last {_money(values[-1]) if values else '-'}",
            f"  peak {_money(max(values)) if values else '-'}",
        ),
    ]
    others = [f"{c} {_money(v)}" for c, v in sorted(board.gmv.items()) if c != currency]
    if others:
        lines.append(Text("also " + ", ".join(others)))
    return Panel(Group(*lines), title="sales", border_style="green")


def _funnel(board: Board) -> Panel:
    table = Table(expand=True, box=None, header_style="bold")
    table.add_column("channel")
    for stage in STAGES:
        table.add_column(stage, justify="right")
    for name in ("UV", "PV/UV", "pay fail", "refund", "complaint", "repeat", "ROI"):
        table.add_column(name, justify="right")
    for row in board.channels:
        cells = [row.channel]
        for stage in STAGES:
            count = f"{row.counts.get(stage, 0.0):,.0f}"
            conversion = row.conversion(stage)
            cells.append(count if conversion is None else f"{count} ({conversion:.1%})")
        depth = "-" if row.visit_depth is None else f"{row.visit_depth:.2f}"
        roi = "-" if row.roi is None else f"{row.roi:.1f}x"
        rates = (row.payment_failure_rate, row.refund_rate, row.complaint_rate,
                 row.repurchase_rate)  # fmt: skip
        table.add_row(*cells, f"{row.uv:,}", depth, *map(_percent, rates), roi)
    title = (
        f"funnel so far (step conversion); UV, PV/UV: last window; rates (repeat: returning "
        f"buyers), ROI: last {RATE_WINDOWS}"
    )
    return Panel(table, title=title, border_style="blue")


def _stock(board: Board) -> Panel:
    table = Table(expand=True, box=None, header_style="bold")
    for name, justify in (("store", "left"), ("sku", "left"), ("status", "left"),
                          ("available", "right"), ("units/min", "right"),
                          ("min left", "right")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for sku in board.stock[:_STOCK_ROWS]:
        out = sku.status.value == "out"
        minutes = sku.minutes_to_stockout
        table.add_row(
            sku.store_id, sku.sku, Text("OUT" if out else "low", "bold red" if out else "yellow"),
            f"{sku.available:,}", f"{sku.velocity_per_min:.1f}",
            "-" if minutes is None else f"{minutes:.0f}",
        )  # fmt: skip
    outs = sum(1 for s in board.stock if s.status.value == "out")
    title = f"stock: {outs} out, {len(board.stock) - outs} running low"
    if not board.stock_complete:
        title += " (some partitions did not answer)"
    return Panel(table, title=title, border_style="yellow")


def _alerts(board: Board) -> Panel:
    table = Table(expand=True, box=None, header_style="bold")
    table.add_column("alert")
    table.add_column("where")
    table.add_column("age", justify="right")
    table.add_column("summary", ratio=1)
    for alert in board.alerts[:_ALERT_ROWS]:
        style = "bold red" if alert.severity == "critical" else "yellow"
        table.add_row(Text(alert.alertname, style), alert.target, _age(alert.age_s),
                      alert.summary)  # fmt: skip
    return Panel(table, title=f"alerts firing: {len(board.alerts)}", border_style="red")


def _footer(board: Board) -> Text:
    text = Text(
        f"input lag {board.lag_messages:,.0f} msgs   dead letters {board.dead_letters:,.0f}"
        f"   late events {board.late_events:,.0f}   windows closed {board.windows_closed:,.0f}"
        "   q quits"
    )
    for problem in board.problems[:2]:
        text.append(f"\n{problem}", style="red")
    return text


def render(board: Board) -> RenderableType:
    layout = Layout()
    layout.split_column(
        Layout(_header(board), size=1),
        Layout(_gmv(board), size=4 + (len(board.gmv) > 1)),
        Layout(_funnel(board), size=len(board.channels) + 3),
        Layout(name="lists"),
        Layout(_footer(board), size=1 + min(2, len(board.problems))),
    )
    layout["lists"].split_row(Layout(_alerts(board), ratio=3), Layout(_stock(board), ratio=2))
    return layout


def plain_line(board: Board) -> str:
    """The board in one line, for a log or a pipe."""
    if board.healthy is None:
        return f"{board.worker} not answering: {'; '.join(board.problems)}"
    currency = board.currency
    stages: dict[str, float] = {stage: 0.0 for stage in STAGES}
    for row in board.channels:
        for stage in STAGES:
            stages[stage] += row.counts.get(stage, 0.0)
    funnel = " > ".join(f"{stage} {stages[stage]:,.0f}" for stage in STAGES)
    firing = ", ".join(f"{a.alertname} {a.target}" for a in board.alerts[:3])
    outs = sum(1 for s in board.stock if s.status.value == "out")
    parts = [
        f"GMV {currency} {_money(board.gmv.get(currency, 0.0))}",
        f"paid orders {board.paid_orders:,.0f}",
        funnel,
        f"alerts firing {len(board.alerts)}" + (f" ({firing})" if firing else ""),
        f"out of stock {outs}, low {len(board.stock) - outs}",
        f"lag {board.lag_messages:,.0f}",
        f"dead letters {board.dead_letters:,.0f}",
    ]
    if board.note:
        parts.append(board.note)
    return " | ".join(parts)
