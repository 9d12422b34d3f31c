"""`salewatch review`: the post-sale review from the windows and alerts topics (or JSONL
exports of them): `review.html`, self-contained, and the charts as PNG files beside it.

    salewatch review --kafka 127.0.0.1:19092 --from 2026-11-10T23:50+08:00 \\
        --to 2026-11-11T00:30+08:00 --campaign campaign.yml --out review/
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from alerts.campaign import load_calendar
from streams.contract.errors import SalewatchError
from warroom.review.charts import CHARTS, render_chart
from warroom.review.errors import ReviewError
from warroom.review.records import read_jsonl, read_topic
from warroom.review.report import render_html
from warroom.review.sale import PhaseSpan, build_review

__all__ = ["add_arguments", "run"]

REPORT = "review.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--kafka", metavar="BOOTSTRAP", help="read the output topics here")
    source.add_argument("--windows", type=Path, help="JSONL export of salewatch.windows")
    parser.add_argument("--alerts", type=Path, help="with --windows: JSONL of salewatch.alerts")
    parser.add_argument(
        "--output-prefix", default="salewatch.",
        help="with --kafka: prefix of the windows and alerts topics (SALEWATCH_OUTPUT_PREFIX)",
    )  # fmt: skip
    parser.add_argument("--from", dest="since", type=_moment, help="first window start (ISO)")
    parser.add_argument("--to", dest="until", type=_moment, help="windows starting before (ISO)")
    parser.add_argument("--campaign", type=Path, help="campaign calendar: its phases are shaded")
    parser.add_argument("--out", type=Path, default=Path("salewatch-review"),
                        help="directory for review.html and the charts")  # fmt: skip
    parser.add_argument("--top-stores", type=int, default=10, help="stores in the store funnel")
    parser.add_argument("--title", default="salewatch post-sale review")


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("needs a UTC offset, e.g. 2026-11-11T00:00+08:00")
    return moment


def run(args: argparse.Namespace) -> int:
    try:
        _run(args)
    except (SalewatchError, OSError) as exc:
        print(f"salewatch review: {exc}", file=sys.stderr)
        return 2
    return 0


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else round(moment.timestamp() * 1000)


def _run(args: argparse.Namespace) -> None:
    if args.top_stores < 1:
        raise ReviewError("--top-stores must be at least 1")
    if args.alerts is not None and args.windows is None:
        raise ReviewError("--alerts goes with --windows")
    phases = []
    if args.campaign is not None:
        calendar = load_calendar(args.campaign)
        phases = [PhaseSpan(p.name, p.start_ms, p.end_ms) for p in calendar.phases]
    tz = (args.since or args.until or datetime.now(UTC)).tzinfo or UTC
    console = Console(stderr=True)
    with Progress(console=console) as progress:
        windows, alerts = _sources(args, progress)
        review = build_review(windows, list(alerts), phases, _ms(args.since), _ms(args.until))
        drawing = progress.add_task("drawing charts", total=len(CHARTS) + 1)
        charts = {}
        for name in CHARTS:
            charts[name] = render_chart(name, review, tz, args.top_stores)
            progress.advance(drawing)
        html = render_html(review, charts, tz, args.top_stores, args.title)
        args.out.mkdir(parents=True, exist_ok=True)
        for name, png in charts.items():
            (args.out / name).write_bytes(png)
        (args.out / REPORT).write_text(html, encoding="utf-8")
        progress.advance(drawing)
    console.print(f"wrote {args.out / REPORT} and {len(charts)} charts in {args.out}/")


def _sources(
    args: argparse.Namespace, progress: Progress
) -> tuple[Iterable[dict[str, Any]], Iterator[dict[str, Any]]]:
    if args.kafka is not None:
        prefix = args.output_prefix
        windows = list(read_topic(args.kafka, prefix + "windows", progress))
        alerts = read_topic(args.kafka, prefix + "alerts", progress, required=False)
        return windows, alerts
    alerts = read_jsonl(args.alerts, progress) if args.alerts is not None else iter(())
    return read_jsonl(args.windows, progress), alerts
