"""`salewatch simulate`: generate a Double 11 scenario, write it and/or produce it to Kafka.

    salewatch simulate --seed 7 --duration 1200 --rate 200 --incident sellout \\
        --incident payment_outage@300-480:channel=app --out /tmp/sim --speed 60
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from simulator.clock import CST
from simulator.config import Incident, IncidentKind, KeyMode, ScenarioConfig
from simulator.errors import SimulatorError
from simulator.generator import generate
from simulator.placement import place_incidents
from simulator.producer import produce
from simulator.progress import ProgressBar
from simulator.scenario import Scenario
from simulator.writers import write_jsonl, write_truth
from streams.contract.kafka_security import KafkaSecurity

__all__ = ["add_arguments", "main", "parse_incident", "run"]

_DEFAULT_BOOTSTRAP = "127.0.0.1:19092"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kinds = ", ".join(kind.value for kind in IncidentKind)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--duration", type=float, default=1200.0, help="event-time seconds (default 1200)"
    )
    parser.add_argument(
        "--rate", type=float, default=200.0, help="events/s at the normal level (default 200)"
    )
    parser.add_argument("--stores", type=int, default=4, help="stores; store 0 is the flagship")
    parser.add_argument("--skus", type=int, default=2000, help="SKUs per store (default 2000)")
    parser.add_argument(
        "--rush-minutes", type=float, default=2.0, help="length of the x20 midnight rush"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=None,
        help="event seconds per wall second (60: a minute per second); default: flat out",
    )
    parser.add_argument(
        "--incident",
        action="append",
        default=[],
        metavar="KIND[@START[-END]][:key=value,...]",
        help=f"inject an incident ({kinds}); times in seconds from the start, "
        "keys store, channel, sku, factor; repeatable",
    )
    parser.add_argument(
        "--key-mode",
        choices=[mode.value for mode in KeyMode],
        default=KeyMode.STORE.value,
        help="Kafka message keys (default store)",
    )
    parser.add_argument("--run-id", default=None, help="prefix of every id (default r<seed>)")
    parser.add_argument(
        "--bootstrap",
        default=None,
        help="Kafka bootstrap servers "
        f"(default $SALEWATCH_KAFKA_BOOTSTRAP or {_DEFAULT_BOOTSTRAP})",
    )
    parser.add_argument("--topic-prefix", default="shop.", help="input topic prefix")
    parser.add_argument("--out", type=Path, default=None, help="write events.jsonl and truth.json")
    parser.add_argument("--no-kafka", action="store_true", help="do not produce to Kafka")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_incident(spec: str) -> Incident | str:
    """`payment_outage` (placed by default), `payment_outage@300-480` (seconds from the
    start) or `sellout@300-600:store=1,factor=20`."""
    head, _, options = spec.partition(":")
    name, _, times = head.partition("@")
    try:
        kind = IncidentKind(name.strip())
    except ValueError:
        kinds = ", ".join(kind.value for kind in IncidentKind)
        raise SimulatorError(f"unknown incident {spec!r} (one of {kinds})") from None
    if not times:
        if options:
            raise SimulatorError(f"incident {spec!r}: options need times, e.g. {kind}@300-480")
        return kind.value
    fields: dict[str, Any] = {}
    try:
        low, _, high = times.partition("-")
        fields["start_s"] = float(low)
        fields["end_s"] = float(high) if high else float(low) + 180.0
        for item in filter(None, options.split(",")):
            key, _, value = item.partition("=")
            key = key.strip()
            if key == "store":
                fields["store"] = int(value)
            elif key in ("channel", "sku"):
                fields[key] = value.strip()
            elif key == "factor":
                fields["factor"] = float(value)
            else:
                raise SimulatorError(f"incident {spec!r}: unknown option {key!r}")
    except ValueError:
        raise SimulatorError(f"incident {spec!r}: bad number") from None
    return Incident(kind, **fields)


def build_config(args: argparse.Namespace) -> ScenarioConfig:
    config = ScenarioConfig(
        seed=args.seed,
        duration_s=args.duration,
        base_rate=args.rate,
        stores=args.stores,
        skus_per_store=args.skus,
        rush_minutes=args.rush_minutes,
        key_mode=KeyMode(args.key_mode),
        run_id=args.run_id,
    )
    return place_incidents(config, [parse_incident(spec) for spec in args.incident])


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except SimulatorError as exc:
        print(f"salewatch simulate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nsalewatch simulate: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    config = build_config(args)
    show = not args.quiet
    bar = ProgressBar("generate", enabled=show)
    scenario = generate(config, lambda phase, done: bar.update(done * 0.9, phase))
    generate_s = bar.elapsed_s
    bar.close(f"{len(scenario):,} events in {generate_s:.1f} s")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_jsonl(scenario, args.out / "events.jsonl")
        write_truth(scenario.truth, args.out / "truth.json")
    produced = None
    if not args.no_kafka:
        bootstrap = (
            args.bootstrap or os.environ.get("SALEWATCH_KAFKA_BOOTSTRAP") or _DEFAULT_BOOTSTRAP
        )
        bar = ProgressBar("produce", enabled=show)
        started = time.perf_counter()

        def sent(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(done / total if total else 1.0, f"{done:,}/{total:,} events {rate:,.0f}/s")

        produced = produce(
            scenario,
            bootstrap,
            args.topic_prefix,
            args.speed,
            progress=sent,
            # SALEWATCH_KAFKA_SECURITY_PROTOCOL and the rest, as the workers read them
            producer_options=KafkaSecurity.from_env(os.environ).client_options(),
        )
        bar.close(f"{produced.events:,} events, {produced.events_per_s:,.0f} events/s")
    print(_summary(scenario, generate_s, produced, args))
    return 0


def _summary(scenario: Scenario, generate_s: float, produced: Any, args: argparse.Namespace) -> str:
    truth = scenario.truth
    lines = [
        f"scenario: seed {scenario.config.seed}, {scenario.config.duration_s:.0f} s from "
        f"{scenario.config.start.isoformat()}, {len(scenario):,} deliveries "
        f"generated in {generate_s:.1f} s ({len(scenario) / max(generate_s, 1e-9):,.0f}/s)",
        "deliveries by topic: "
        + ", ".join(f"{t} {n:,}" for t, n in sorted(scenario.deliveries_by_topic().items())),
        f"duplicates: {truth.duplicates:,}   late: {len(truth.late_event_ids):,}   "
        f"GMV: {truth.gmv} CNY",
    ]
    if truth.incidents:
        lines.append("incidents:")
        for incident in truth.incidents:
            target = (
                incident["store_id"]
                + "".join(f" {c}" for c in incident["channels"])
                + (f" {incident['sku']}" if incident["sku"] else "")
            )
            lines.append(
                f"  {incident['kind']:<16} {target:<24} {_clock(incident['start_ms'])} - "
                f"{_clock(incident['end_ms'])}"
            )
        lines.append("expected alerts (event time, +08:00):")
        for alert in truth.expected_alerts:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(alert.labels.items()))
            lines.append(
                f"  {alert.alertname}{{{labels}}} {_clock(alert.starts_at_ms)} - "
                f"{_clock(alert.ends_at_ms)}"
            )
    for note in truth.notes:
        lines.append(f"note: {note}")
    if args.out is not None:
        lines.append(f"wrote {args.out / 'events.jsonl'} and {args.out / 'truth.json'}")
    if produced is not None:
        lines.append(
            f"produced {produced.events:,} events in {produced.messages:,} messages "
            f"({produced.bytes / 1e6:,.1f} MB, compression {produced.compression}) in "
            f"{produced.seconds:.1f} s: {produced.events_per_s:,.0f} events/s"
        )
    return "\n".join(lines)


def _clock(ts_ms: int | None) -> str:
    """Local time of day (+08:00) of an event time, to the second."""
    if ts_ms is None:
        return "end"
    return datetime.fromtimestamp(ts_ms / 1000, CST).strftime("%H:%M:%S")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="salewatch simulate", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
