"""Backtest of the business alerts on simulated sales: recall, detection delay, false alerts.

    python -m benchmarks.alert_backtest [--seeds 20] [--jobs 2] [--families ...]
        [--warmup-minutes 12] [--no-decoys] [--sizes 10 30 100 300 1000 5000]

Per seed, the simulator generates (no Kafka: its ground-truth windows are what the pipeline
emits) six stores of 10, 30, 100, 300, 1,000 and 5,000 clicks a minute (or `--sizes`; four
channels: app 55%, miniapp 20%, web 15%, live 10%) and replays the windows through the detectors
with alerts.backtest (60 s windows, default thresholds):

- incident families, each on every store, 6 minutes from a start that varies with the seed
  (after 12 minutes of normal traffic): a checkout broken at the order step and at the pay
  step (every channel), a payment outage (every channel), a refund wave, a store outage
  (every channel stops). The expected alerts are the simulator's (`truth.expected_alerts`);
- decoys, 25 minutes each: a midnight rush of x3, x5, x10 or x20 for 2-3 minutes, a
  flash sale starting and ending on one store, a scheduled price change on another (even
  seeds with a campaign calendar naming the rush and the flash sale, odd seeds without any),
  and a quiet night (the same stores at a twentieth of the traffic).

Prints recall and delay per alert x store size, the target check (every incident whose
judged stage sees >= 30 events a minute caught within 3 windows) and false alerts per
simulated hour.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from alerts.backtest import delay, matching, replay, scenario_windows, truth_incidents
from alerts.campaign import Calendar, CampaignFile
from simulator import CHANNELS, FlashSale, FunnelRates, Incident, ScenarioConfig, generate
from simulator.clock import CST

SIZES = (10, 30, 100, 300, 1000, 5000)  # clicks per minute per store
BYSTANDER = 300  # clicks per minute of a store without incident
WINDOW_MS = 60_000
INCIDENT_S = 360.0
TARGET_PER_MINUTE = 30  # judged-stage events a minute from which every incident must be caught
TARGET_DELAY = 3  # windows
FAMILIES = ("broken_checkout", "broken_pay", "payment_outage", "refund_wave", "store_outage")


def base_rate(clicks_per_minute: float) -> float:
    """Events/s of the whole scenario for this many clicks a minute in total."""
    funnel = FunnelRates()
    clicks_per_session = funnel.impressions_per_session * funnel.click
    return clicks_per_minute / 60 / clicks_per_session * funnel.events_per_session()


def incidents(family: str, store: int, start_s: float) -> list[Incident]:
    end_s = start_s + INCIDENT_S
    if family == "store_outage":
        return [Incident("traffic_stop", start_s, end_s, store=store, channel=c) for c in CHANNELS]
    if family == "payment_outage":
        return [Incident(family, start_s, end_s, store=store, channel=c) for c in CHANNELS]
    return [Incident(family, start_s, end_s, store=store)]


def incident_truth(
    seed: int, family: str, warmup_s: float, store_sizes: tuple[int, ...] = SIZES
) -> Any:
    """The ground truth of one incident run: the family on every store."""
    start_s = warmup_s + (seed * 17) % 60  # anywhere in a window
    injected = tuple(
        i for store in range(len(store_sizes)) for i in incidents(family, store, start_s)
    )
    # a platform has other stores: with every store silent no empty window is judged
    # (a feed outage, not a store outage: alerts.evaluation)
    sizes = (*store_sizes, BYSTANDER) if family == "store_outage" else store_sizes
    config = ScenarioConfig(
        seed=seed, duration_s=start_s + INCIDENT_S + 60, base_rate=base_rate(sum(sizes)),
        stores=len(sizes), store_weights=sizes, skus_per_store=300, flash_sales=(),
        rush_multiplier=1.0, incidents=injected,
    )  # fmt: skip
    return generate(config).truth


def incident_run(seed: int, family: str, warmup_s: float, sizes: tuple[int, ...]) -> dict[str, Any]:
    truth = incident_truth(seed, family, warmup_s, sizes)
    result = replay(scenario_windows(truth), Calendar.build(CampaignFile()))
    return judged_incidents(seed, family, truth, result, sizes)


def judged_incidents(
    seed: int, family: str, truth: Any, result: Any, sizes: tuple[int, ...] = SIZES
) -> dict[str, Any]:
    """Each expected alert's row (judged volume, delay) and the false alerts of a replay."""
    expected, allowed = truth_incidents(truth)
    rows = []
    for incident, alert in zip(expected, truth.expected_alerts, strict=True):
        per_window = alert.evidence.get("baseline_volume_per_window")
        if per_window is None:
            per_window = alert.evidence.get("baseline_per_window")
        rows.append({
            "seed": seed, "family": family, "alertname": incident.alertname,
            "size": sizes[int(incident.labels["store_id"].split("-")[1])],
            "labels": incident.labels,
            "per_minute": (per_window or 0) * 60_000 / WINDOW_MS,
            "delay": delay(result, incident),
        })  # fmt: skip
    return {"rows": rows, **_false(result, [*expected, *allowed])}


def decoy_run(seed: int, quiet: bool, store_sizes: tuple[int, ...]) -> dict[str, Any]:
    start = datetime(2026, 11, 10, 23, 50, tzinfo=CST)
    sizes = tuple(size / 20 for size in store_sizes) if quiet else store_sizes
    rush = (3.0, 5.0, 10.0, 20.0)[seed % 4]
    rush_minutes = 2.0 + seed % 2
    flash = FlashSale(start_s=900, end_s=1140, store=seed % len(sizes), surge=2.0)
    price = FlashSale(start_s=300, end_s=1400, store=(seed + 3) % len(sizes), skus=50,
                      surge=0.0, price_factor=0.7)  # fmt: skip
    config = ScenarioConfig(
        seed=1000 + seed, start=start, duration_s=1500, base_rate=base_rate(sum(sizes)),
        stores=len(sizes), store_weights=sizes, skus_per_store=300,
        flash_sales=() if quiet else (flash, price), rush_multiplier=1.0 if quiet else rush,
        rush_minutes=rush_minutes,
    )  # fmt: skip
    truth = generate(config).truth
    phases: list[dict[str, Any]] = []
    if seed % 2 == 0 and not quiet:
        midnight = start + timedelta(minutes=10)
        phases = [
            {"name": "midnight-peak", "start": midnight,
             "end": midnight + timedelta(minutes=rush_minutes), "traffic_multiplier": rush},
            {"name": "flash-sale", "start": start + timedelta(seconds=flash.start_s),
             "end": start + timedelta(seconds=flash.end_s),
             "stores": [f"store-{flash.store:03d}"], "traffic_multiplier": 1 + flash.surge,
             "baseline": "hold"},
        ]  # fmt: skip
    calendar = Calendar.build(CampaignFile.model_validate({"phases": phases}))
    result = replay(scenario_windows(truth), calendar)
    expected, allowed = truth_incidents(truth)
    return _false(result, [*expected, *allowed])


def _false(result: Any, known: list[Any]) -> dict[str, Any]:
    matched = {i for incident in known for i in matching(result, incident)}
    false = [
        f"{e.key.alertname}{dict(e.key.labels)}"
        for i, e in enumerate(result.episodes)
        if i not in matched
    ]
    return {"hours": result.hours, "false": false}


def _task(task: tuple[str, int, str, float, tuple[int, ...]]) -> tuple[str, dict[str, Any]]:
    kind, seed, name, warmup_s, sizes = task
    if kind == "incident":
        return kind, incident_run(seed, name, warmup_s, sizes)
    return kind, decoy_run(seed, name == "quiet", sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=FAMILIES)
    parser.add_argument("--warmup-minutes", type=float, default=12.0,
                        help="normal traffic before the incidents (default 12)")  # fmt: skip
    parser.add_argument("--no-decoys", action="store_true", help="incident runs only")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                        help="clicks a minute of each store (default: the six above)")  # fmt: skip
    args = parser.parse_args()
    began = time.monotonic()
    warmup_s = args.warmup_minutes * 60
    sizes = tuple(args.sizes)
    tasks = [("incident", s, f, warmup_s, sizes) for s in range(args.seeds)
             for f in args.families]  # fmt: skip
    if not args.no_decoys:
        tasks += [("decoy", s, n, 0.0, sizes) for s in range(args.seeds)
                  for n in ("sale", "quiet")]  # fmt: skip
    rows: list[dict[str, Any]] = []
    hours: dict[str, float] = defaultdict(float)
    false: dict[str, list[str]] = defaultdict(list)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for kind, out in pool.map(_task, tasks):
            rows.extend(out.get("rows", []))
            hours[kind] += out["hours"]
            false[kind].extend(out["false"])
    print(f"# alert backtest: {args.seeds} seeds, {time.monotonic() - began:.0f} s\n")
    print(table(rows, sizes))
    print()
    print(target(rows))
    print()
    print("| scenarios | simulated hours | false alerts | per hour |")
    print("|---|---:|---:|---:|")
    for kind, label in (("decoy", "decoys (sale + quiet night)"), ("incident", "incident runs")):
        if hours[kind]:
            count = len(false[kind])
            print(f"| {label} | {hours[kind]:.1f} | {count} | {count / hours[kind]:.2f} |")
    for kind, alerts in false.items():
        for alert in sorted(set(alerts)):
            print(f"false ({kind}): {alerts.count(alert)} x {alert}")


def table(rows: list[dict[str, Any]], sizes: tuple[int, ...]) -> str:
    """Caught / incidents and mean (max) delay in windows, per alert x store size."""
    cells: dict[tuple[str, int], list[int | None]] = defaultdict(list)
    for row in rows:
        name = row["alertname"] + (f"{{{row['labels']['stage']}}}" if "stage" in row["labels"]
                                   else "")  # fmt: skip
        cells[name, row["size"]].append(row["delay"])
    names = sorted({name for name, _ in cells})
    lines = [
        "| alert | " + " | ".join(f"{size:,} clicks/min" for size in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for name in names:
        out = []
        for size in sizes:
            delays = cells.get((name, size), [])
            caught = [d for d in delays if d is not None]
            text = f"{len(caught)}/{len(delays)}"
            if caught:
                text += f", {statistics.mean(caught):.1f} ({max(caught)})"
            out.append(text)
        lines.append(f"| {name} | " + " | ".join(out) + " |")
    return "\n".join(lines)


def target(rows: list[dict[str, Any]]) -> str:
    judged = [r for r in rows if r["per_minute"] >= TARGET_PER_MINUTE]
    met = [r for r in judged if r["delay"] is not None and r["delay"] <= TARGET_DELAY]
    lines = [
        f"target: incidents whose judged stage sees >= {TARGET_PER_MINUTE} events/min, caught"
        f" within {TARGET_DELAY} windows: {len(met)} of {len(judged)}"
    ]
    for row in judged:
        if row not in met:
            lines.append(
                f"  missed or late: {row['alertname']} {row['labels']} ({row['per_minute']:.0f}"
                f"/min, delay {row['delay']}; seed {row['seed']}, {row['family']})"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
