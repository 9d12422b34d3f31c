"""`salewatch backtest`: replay final windows through the detectors, offline and fast.

Windows come from a JSONL file of `salewatch.windows` records, a range of the windows
topic in Kafka, a simulator ground truth (`salewatch simulate --out`) or a simulator
scenario generated on the spot (its ground-truth windows are exactly what the pipeline
emits). They go, in event-time order, through the same evaluators, detectors, campaign
calendar and alert lifecycle as the worker (alerts.evaluation, alerts.lifecycle), with the
window's end as the clock. The alert timeline is printed; given labelled incidents (a YAML
file, or the scenario's expected alerts) each alert's recall, false alerts per hour of
replayed event time and detection delay in windows (1: fired when the incident's first
window closed) are printed too, and the exit code is 1 when a floor given on the command
line is not met, so the check fits a pre-sale pipeline.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from alerts.campaign import Calendar, CampaignFile, load_calendar
from alerts.clock import iso_ms
from alerts.detectors import TrackKey
from alerts.evaluation import FunnelEvaluator, Witness
from alerts.fleet import FleetRates
from alerts.lifecycle import AlertBook
from streams.contract.errors import SalewatchError
from streams.contract.kafka_security import KafkaSecurity
from streams.contract.routing import merge_partition

__all__ = [
    "Backtest",
    "Episode",
    "Incident",
    "Score",
    "add_arguments",
    "delay",
    "load_incidents",
    "matching",
    "replay",
    "run",
    "scenario_windows",
    "score",
    "truth_incidents",
]


class BacktestError(SalewatchError, ValueError):
    """Bad input for a backtest; the message says which."""


class Incident(BaseModel):
    """A labelled incident: the alert it must raise, and when it happened (event time)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alertname: str
    labels: dict[str, str] = Field(default_factory=dict)
    start: datetime
    end: datetime | None = None  # None: still going when the replay ends

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-11-11T00:20:00+08:00")
        return value

    @property
    def key(self) -> TrackKey:
        return TrackKey.of(self.alertname, self.labels)

    @property
    def start_ms(self) -> int:
        return round(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int | None:
        return None if self.end is None else round(self.end.timestamp() * 1000)


@dataclass(frozen=True)
class Episode:
    """An alert from firing to resolved, as the lifecycle published it."""

    key: TrackKey
    severity: str
    fired_ms: int  # end of the window whose judgement fired it (the replay's clock)
    event_start_ms: int  # when the condition began, per the detector
    resolved_ms: int | None = None
    summary: str = ""


@dataclass
class Backtest:
    window_ms: int
    first_ms: int  # event time replayed: [first_ms, last_ms)
    last_ms: int
    episodes: list[Episode] = field(default_factory=list)

    @property
    def hours(self) -> float:
        return (self.last_ms - self.first_ms) / 3_600_000


@dataclass
class Score:
    """One alert name's figures against the labelled incidents."""

    alertname: str
    incidents: int = 0
    caught: int = 0
    delays: list[int] = field(default_factory=list)  # windows, per caught incident
    false: int = 0

    @property
    def recall(self) -> float | None:
        return self.caught / self.incidents if self.incidents else None


def replay(
    windows: Iterable[Mapping[str, Any]], calendar: Calendar, partitions: int = 1
) -> Backtest:
    """Judge the windows as stage 3 would: all windows of a start, then the frontier moves
    past it (stores spread over `partitions` evaluators sharing one witness)."""
    by_start: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    window_ms = 0
    for record in windows:
        by_start[record["window_start"]].append(record)
        window_ms = record["window_end"] - record["window_start"]
    if not by_start:
        raise BacktestError("no windows to replay")
    witness, fleet = Witness(), FleetRates()
    evaluators = [
        FunnelEvaluator(q, window_ms, calendar, witness, fleet) for q in range(partitions)
    ]
    book = AlertBook("")
    open_episodes: dict[TrackKey, Episode] = {}
    result = Backtest(window_ms, min(by_start), max(by_start) + window_ms)
    for start in sorted(by_start):
        for record in by_start[start]:
            evaluators[merge_partition(record["store_id"], partitions)].add(dict(record))
        now = start + window_ms
        for q, evaluator in enumerate(evaluators):
            for signal in evaluator.advance(now).signals:
                update = book.apply(signal, q, now)
                key = TrackKey.of(signal.alertname, signal.labels)
                firing = [a for a in update.published if a.firing]
                if firing and key not in open_episodes:
                    alert = firing[-1]
                    open_episodes[key] = Episode(key, alert.severity, now, alert.event_starts_ms,
                                                 summary=alert.annotations["summary"])  # fmt: skip
                elif not firing and update.published and key in open_episodes:
                    episode = open_episodes.pop(key)
                    result.episodes.append(replace(episode, resolved_ms=now))
    result.episodes.extend(open_episodes.values())
    result.episodes.sort(key=lambda e: (e.fired_ms, e.key))
    return result


def delay(result: Backtest, incident: Incident, match_windows: int = 5) -> int | None:
    """Windows from the incident's first window to the close of the window that fired its
    alert (1: when its first window closed); None if no episode of the same alert and
    labels fired from its first window to `match_windows` after its end."""
    hits = matching(result, incident, match_windows)
    if not hits:
        return None
    return (result.episodes[hits[0]].fired_ms - _first(result, incident)) // result.window_ms


def matching(result: Backtest, incident: Incident, match_windows: int = 5) -> list[int]:
    """Indexes of the episodes that catch the incident."""
    first = _first(result, incident)
    end = result.last_ms if incident.end_ms is None else incident.end_ms
    last = end + match_windows * result.window_ms
    return [
        i
        for i, e in enumerate(result.episodes)
        if e.key == incident.key and first < e.fired_ms <= last
    ]


def _first(result: Backtest, incident: Incident) -> int:
    return incident.start_ms - incident.start_ms % result.window_ms


def score(
    result: Backtest,
    incidents: Iterable[Incident],
    allowed: Iterable[Incident] = (),
    match_windows: int = 5,
) -> dict[str, Score]:
    """Per alert name: incidents caught, detection delays, and false alerts (episodes
    that catch no incident and are no allowed side effect)."""
    scores: dict[str, Score] = {}

    def of(alertname: str) -> Score:
        return scores.setdefault(alertname, Score(alertname))

    used: set[int] = set()
    for incident in incidents:
        found = of(incident.alertname)
        found.incidents += 1
        hits = matching(result, incident, match_windows)
        if hits:
            used.update(hits)
            found.caught += 1
            fired = result.episodes[hits[0]].fired_ms
            found.delays.append((fired - _first(result, incident)) // result.window_ms)
    for i in sorted(set(range(len(result.episodes))) - used):
        if not any(i in matching(result, a, match_windows) for a in allowed):
            of(result.episodes[i].key.alertname).false += 1
    return dict(sorted(scores.items()))


def load_incidents(path: str | Path) -> list[Incident]:
    """`incidents: [{alertname, labels, start, end}]` (or the list alone) from YAML."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BacktestError(f"cannot read incidents from {path}: {exc}") from None
    items = raw.get("incidents", []) if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise BacktestError(f"{path}: expected a list of incidents")
    try:
        return [Incident.model_validate(item) for item in items]
    except ValidationError as exc:
        raise BacktestError(f"{path}: {exc}") from None


# --- window sources -------------------------------------------------------------------------
def jsonl_windows(path: str | Path) -> Iterator[dict[str, Any]]:
    with Path(path).open("rb") as lines:
        for line in lines:
            if line.strip():
                yield orjson.loads(line)


def kafka_windows(
    bootstrap: str,
    topic: str,
    since_ms: int | None,
    until_ms: int | None,
    security: KafkaSecurity | None = None,
) -> Iterator[dict[str, Any]]:
    """Every record of the topic (beginning to the current end) whose window starts in
    [since, until)."""
    from kafka import KafkaConsumer, TopicPartition  # type: ignore[import-untyped]

    options = (security or KafkaSecurity()).client_options()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **options)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            raise BacktestError(f"no topic {topic} at {bootstrap}")
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        left = {tp for tp in partitions if ends[tp] > 0}
        while left:
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for message in records:
                    record = orjson.loads(message.value)
                    start = record["window_start"]
                    if (since_ms is None or start >= since_ms) and (
                        until_ms is None or start < until_ms
                    ):
                        yield record
                if consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
    finally:
        consumer.close()


def scenario_windows(truth: Any) -> Iterator[dict[str, Any]]:
    """A simulator ground truth's windows as `salewatch.windows` records (the fields the
    detectors read)."""
    w = truth.window_ms
    for (store_id, channel, start), window in sorted(truth.windows.items()):
        yield {
            "store_id": store_id, "channel": channel, "window_start": start,
            "window_end": start + w, "counts": dict(window.counts),
            "paid_orders": window.paid_orders, "payment_failed": window.payment_failed,
            "refund_requested": window.refund_requested, "complaints": window.complaints,
        }  # fmt: skip


def truth_incidents(truth: Any) -> tuple[list[Incident], list[Incident]]:
    """(expected, allowed) alerts of a simulator ground truth, as labelled incidents."""

    def moment(epoch_ms: int) -> datetime:
        return datetime.fromisoformat(iso_ms(epoch_ms))

    def convert(alerts: Iterable[Any]) -> list[Incident]:
        return [
            Incident(
                alertname=a.alertname,
                labels=dict(a.labels),
                start=moment(a.starts_at_ms),
                end=None if a.ends_at_ms is None else moment(a.ends_at_ms),
            )
            for a in alerts
        ]

    return convert(truth.expected_alerts), convert(truth.allowed_alerts)


# --- the command ----------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--windows", type=Path, help="JSONL file of salewatch.windows records")
    source.add_argument(
        "--kafka", metavar="BOOTSTRAP", help="read the windows topic of this Kafka cluster"
    )
    source.add_argument("--truth", type=Path, help="simulator ground truth (truth.json)")
    source.add_argument(
        "--scenario", metavar="ARGS",
        help='a simulator scenario, as `salewatch simulate` options: "--duration 1800'
        ' --incident broken_checkout@600-960:channel=miniapp"',
    )  # fmt: skip
    parser.add_argument("--topic", default="salewatch.windows", help="with --kafka")
    parser.add_argument("--since", type=_time, help="with --kafka: first window start (ISO)")
    parser.add_argument("--until", type=_time, help="with --kafka: windows starting before")
    parser.add_argument("--campaign", type=Path, help="campaign calendar (default: none)")
    parser.add_argument("--incidents", type=Path, help="labelled incidents (YAML)")
    parser.add_argument("--partitions", type=int, default=1, help="stage-3 partitions (1)")
    parser.add_argument(
        "--match-windows", type=int, default=5,
        help="an alert this many windows after an incident's end still catches it (5)",
    )  # fmt: skip
    parser.add_argument("--min-recall", type=float, help="floor: recall of every alert")
    parser.add_argument("--max-false-per-hour", type=float, help="ceiling: false alerts/hour")
    parser.add_argument("--max-delay-windows", type=int, help="ceiling: detection delay")
    parser.add_argument("--quiet", action="store_true", help="no timeline, only the figures")


def _time(text: str) -> int:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("needs a UTC offset")
    return round(moment.timestamp() * 1000)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except SalewatchError as exc:
        print(f"salewatch backtest: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    calendar = load_calendar(args.campaign) if args.campaign else Calendar.build(CampaignFile())
    incidents: list[Incident] = []
    allowed: list[Incident] = []
    windows: Iterable[Mapping[str, Any]]
    if args.windows is not None:
        windows = jsonl_windows(args.windows)
    elif args.kafka is not None:
        security = KafkaSecurity.from_env(os.environ)  # as the workers read it
        windows = kafka_windows(args.kafka, args.topic, args.since, args.until, security)
    else:
        truth = _truth(args)
        windows = scenario_windows(truth)
        incidents, allowed = truth_incidents(truth)
    if args.incidents is not None:
        incidents = load_incidents(args.incidents)
    result = replay(windows, calendar, args.partitions)
    if not args.quiet:
        print(timeline(result))
    scores = score(result, incidents, allowed, args.match_windows)
    print(report(result, scores))
    failures = floors(result, scores, args.min_recall, args.max_false_per_hour,
                      args.max_delay_windows)  # fmt: skip
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def _truth(args: argparse.Namespace) -> Any:
    from simulator import generate, read_truth
    from simulator.cli import add_arguments as simulator_arguments
    from simulator.cli import build_config

    if args.truth is not None:
        return read_truth(args.truth)
    parser = argparse.ArgumentParser(prog="--scenario")
    simulator_arguments(parser)
    return generate(build_config(parser.parse_args(shlex.split(args.scenario)))).truth


def _labels(key: TrackKey) -> str:
    return key.alertname + "{" + ",".join(f"{k}={v}" for k, v in key.labels) + "}"


def timeline(result: Backtest) -> str:
    lines = [f"alert timeline ({len(result.episodes)} alerts, {result.hours:.2f} h replayed):"]
    for e in result.episodes:
        resolved = "still firing" if e.resolved_ms is None else f"resolved {iso_ms(e.resolved_ms)}"
        lines.append(
            f"  {iso_ms(e.fired_ms)}  {e.severity:8}  {_labels(e.key)}  since"
            f" {iso_ms(e.event_start_ms)}, {resolved}: {e.summary}"
        )
    return "\n".join(lines)


def report(result: Backtest, scores: Mapping[str, Score]) -> str:
    lines = [
        f"| alert | incidents | caught | recall | delay (windows) mean / max | false"
        f" | false per hour ({result.hours:.2f} h) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scores.values():
        recall = "-" if s.recall is None else f"{s.recall:.0%}"
        delay = (
            f"{statistics.mean(s.delays):.1f} / {max(s.delays)}" if s.delays else "-"
        )  # fmt: skip
        lines.append(
            f"| {s.alertname} | {s.incidents} | {s.caught} | {recall} | {delay} | {s.false}"
            f" | {s.false / result.hours:.2f} |"
        )
    return "\n".join(lines)


def floors(
    result: Backtest,
    scores: Mapping[str, Score],
    min_recall: float | None,
    max_false_per_hour: float | None,
    max_delay: int | None,
) -> list[str]:
    """What a pre-sale check fails on."""
    failures = []
    for s in scores.values():
        if min_recall is not None and s.recall is not None and s.recall < min_recall:
            failures.append(f"{s.alertname} recall {s.recall:.0%} < {min_recall:.0%}")
        if max_delay is not None and s.delays and max(s.delays) > max_delay:
            failures.append(f"{s.alertname} delay {max(s.delays)} windows > {max_delay}")
    false = sum(s.false for s in scores.values())
    if max_false_per_hour is not None and false / result.hours > max_false_per_hour:
        failures.append(
            f"{false} false alerts in {result.hours:.2f} h > {max_false_per_hour:g} per hour"
        )
    return failures
