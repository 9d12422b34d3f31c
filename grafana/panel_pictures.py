"""A dashboard's panels drawn with matplotlib from their own queries' results.

Grafana cannot run everywhere the README's pictures are made, so each panel of a generated
dashboard JSON is drawn the way its type shows it: a time series as lines (from a range
query), a stat as big numbers, a bar gauge as bars and a table as rows (from an instant
query at the end of the range), titled like the panel, values in the panel's unit, alert
thresholds as red lines. The queries are the panel's own, expanded as Grafana would
(grafana/queries.py). Figures are drawn straight to files: no pyplot, nothing global.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from grafana.queries import PanelQueries

__all__ = ["Span", "draw_dashboard", "picture_name"]

Json = dict[str, Any]
Span = tuple[float, float, float]  # start, end (epoch seconds), step of range queries
_DPI = 100
_UNIT_PX = 32  # height of one grid row in pixels (Grafana's is 30 plus a margin)
_COLUMN_PX = 60  # width of one of the 24 grid columns
_NO_DATA = "No data"


def picture_name(panel: Json) -> str:
    """File name of a panel's picture: its title, lowercase, words joined by dashes."""
    words = re.findall(r"[a-z0-9]+", panel["title"].lower())
    return "-".join(words) + ".png"


def draw_dashboard(
    board: Json, queries: PanelQueries, span: Span, out_dir: Path, tz: tzinfo
) -> list[Path]:
    """One PNG per panel and a contact sheet of them all in the dashboard's layout
    (`<uid>.png`); returns the files written."""
    queries.resolve(board)
    panels = [p for p in board["panels"] if p["type"] != "row"]
    data = [_query(panel, queries, span) for panel in panels]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for panel, results in zip(panels, data, strict=True):
        grid = panel["gridPos"]
        figure = Figure(figsize=_inches(grid["w"], grid["h"]), dpi=_DPI)
        _draw(figure.add_subplot(), panel, results, span, tz)
        path = out_dir / picture_name(panel)
        figure.savefig(path, dpi=_DPI, bbox_inches="tight")
        written.append(path)
    sheet = out_dir / f"{board['uid']}.png"
    _contact_sheet(board, panels, data, span, tz).savefig(sheet, dpi=_DPI)
    return [sheet, *written]


# one series of a target's result: legend, times and values (one of each for an instant query)
Series = tuple[str, list[float], list[float]]


def _query(panel: Json, queries: PanelQueries, span: Span) -> list[Series]:
    start, end, step = span
    series: list[Series] = []
    for target in panel["targets"]:
        if target.get("instant"):
            for sample in queries.instant(target["expr"], at=end):
                legend = _legend(target["legendFormat"], sample["metric"])
                series.append((legend, [end], [float(sample["value"][1])]))
        else:
            for sample in queries.range(target["expr"], start, end, step):
                legend = _legend(target["legendFormat"], sample["metric"])
                points = [(float(t), float(v)) for t, v in sample["values"]]
                series.append((legend, [t for t, _ in points], [v for _, v in points]))
    return series


def _legend(legend_format: str, labels: dict[str, str]) -> str:
    if legend_format == "__auto":
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), legend_format)


def _inches(width_units: int, height_units: int) -> tuple[float, float]:
    return width_units * _COLUMN_PX / _DPI, height_units * _UNIT_PX / _DPI


def _contact_sheet(
    board: Json, panels: list[Json], data: list[list[Series]], span: Span, tz: tzinfo
) -> Figure:
    """Every panel at its grid position, rows as headings."""
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"])
    figure = Figure(figsize=_inches(24, rows), dpi=_DPI)
    for heading in (p for p in board["panels"] if p["type"] == "row"):
        y = 1 - (heading["gridPos"]["y"] + 0.6) / rows
        figure.text(0.005, y, heading["title"], fontsize=12, weight="bold")
    for panel, results in zip(panels, data, strict=True):
        grid = panel["gridPos"]
        margin_x, margin_top, margin_bottom = 0.5 / 24, 0.9 / rows, 0.9 / rows
        ax = figure.add_axes(
            (
                grid["x"] / 24 + margin_x,
                1 - (grid["y"] + grid["h"]) / rows + margin_bottom,
                grid["w"] / 24 - 1.6 * margin_x,
                grid["h"] / rows - margin_top - margin_bottom,
            )
        )
        _draw(ax, panel, results, span, tz)
    return figure


def _draw(ax: Axes, panel: Json, results: list[Series], span: Span, tz: tzinfo) -> None:
    ax.set_title(panel["title"], loc="left", fontsize=10, weight="bold")
    if not results:
        ax.set_axis_off()
        ax.text(0.5, 0.5, _NO_DATA, ha="center", va="center", color="grey", fontsize=12)
        return
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    _DRAWERS.get(panel["type"], _table)(ax, panel, results, _formatter(unit))
    if panel["type"] == "timeseries":  # every time series over the same range
        ax.set_xlim(datetime.fromtimestamp(span[0], tz), datetime.fromtimestamp(span[1], tz))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=tz))


Format = Callable[[float], str]


def _formatter(unit: str) -> Format:
    if unit == "percentunit":
        return lambda v: f"{v:.1%}"
    suffix = {"m": " min", "s": " s"}.get(unit, "")
    return lambda v: f"{v:,.2f}{suffix}" if abs(v) < 100 and v != int(v) else f"{v:,.0f}{suffix}"


def _timeseries(ax: Axes, panel: Json, results: list[Series], fmt: Format) -> None:
    for legend, times, values in results:
        ax.plot([datetime.fromtimestamp(t, UTC) for t in times], values, label=legend, lw=1.2)
    for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]:
        if step["color"] == "red" and step["value"] is not None:
            ax.axhline(step["value"], color="#d62728", lw=1, ls="--", label="alert threshold")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", ncol=2 if len(results) > 5 else 1)


def _stat(ax: Axes, panel: Json, results: list[Series], fmt: Format) -> None:
    ax.set_axis_off()
    for i, (legend, _, (value,)) in enumerate(results):
        y = 1 - (i + 0.6) / len(results)
        ax.text(0.5, y, fmt(value), ha="center", va="center", fontsize=22, color="#2a7f2a")
        ax.text(0.5, y - 0.35 / len(results), legend, ha="center", fontsize=8, color="grey")


def _bargauge(ax: Axes, panel: Json, results: list[Series], fmt: Format) -> None:
    legends = [legend for legend, _, _ in results][::-1]  # the first target on top
    values = [values[-1] for _, _, values in results][::-1]
    bars = ax.barh(legends, values, color="#5794f2")
    ax.bar_label(bars, labels=[fmt(v) for v in values], fontsize=8, padding=3)
    ax.set_xlim(0, max(values) * 1.25 or 1)
    ax.xaxis.set_visible(False)
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right", "bottom"]].set_visible(False)


def _table(ax: Axes, panel: Json, results: list[Series], fmt: Format) -> None:
    ax.set_axis_off()
    rows = [[legend, fmt(values[-1])] for legend, _, values in results]
    table = ax.table(cellText=rows, colLabels=["series", "value"], loc="upper center",
                     colLoc="left", cellLoc="left", colWidths=[0.75, 0.25])  # fmt: skip
    table.auto_set_font_size(False)
    table.set_fontsize(8)


_DRAWERS = {"timeseries": _timeseries, "stat": _stat, "bargauge": _bargauge, "table": _table}
