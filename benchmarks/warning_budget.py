"""How the warning budget buys time against refund waves: the alert backtest's refund-wave
runs, each scenario replayed at several `significance.warning_alpha` values.

    python -m benchmarks.warning_budget [--seeds 20] [--jobs 2]
        [--warning-alpha 0.001 0.005 0.01 0.02 0.05] [--warmup-minutes 12]

Per seed the scenario of `python -m benchmarks.alert_backtest --families refund_wave` (six
stores, a x5 refund wave on each) is generated once and replayed at every value (the
paging budget's 0.001 is the value RefundSurge had before it got a budget of its own).
Prints per value the waves whose judged stage sees >= 30 paid orders a minute caught
within 3 windows, their mean and max delay, the late ones, and false alerts of the runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from alerts.backtest import replay, scenario_windows
from alerts.campaign import Calendar, CampaignFile
from benchmarks.alert_backtest import (
    TARGET_DELAY,
    TARGET_PER_MINUTE,
    incident_truth,
    judged_incidents,
)

FAMILY = "refund_wave"


def seed_run(task: tuple[int, float, tuple[float, ...]]) -> dict[float, dict[str, Any]]:
    seed, warmup_s, values = task
    truth = incident_truth(seed, FAMILY, warmup_s)
    windows = list(scenario_windows(truth))
    out = {}
    for value in values:
        campaign = {"thresholds": {"significance": {"warning_alpha": value}}}
        result = replay(windows, Calendar.build(CampaignFile.model_validate(campaign)))
        out[value] = judged_incidents(seed, FAMILY, truth, result)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--warning-alpha", type=float, nargs="+",
                        default=[0.001, 0.005, 0.01, 0.02, 0.05])  # fmt: skip
    parser.add_argument("--warmup-minutes", type=float, default=12.0)
    args = parser.parse_args()
    began = time.monotonic()
    values = tuple(args.warning_alpha)
    tasks = [(seed, args.warmup_minutes * 60, values) for seed in range(args.seeds)]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(seed_run, tasks))
    print(f"# warning budget against refund waves: {args.seeds} seeds, "
          f"{time.monotonic() - began:.0f} s\n")  # fmt: skip
    print(f"| warning_alpha | caught within {TARGET_DELAY} windows | mean (max) delay |"
          " late (seed: delay) | false alerts |")  # fmt: skip
    print("|---:|---:|---:|---|---:|")
    for value in values:
        rows = [r for run in runs for r in run[value]["rows"]
                if r["per_minute"] >= TARGET_PER_MINUTE]  # fmt: skip
        delays = [r["delay"] for r in rows if r["delay"] is not None]
        late = [r for r in rows if r["delay"] is None or r["delay"] > TARGET_DELAY]
        spread = f"{statistics.mean(delays):.1f} ({max(delays)})" if delays else "-"
        named = ", ".join(f"{r['seed']}: {r['delay']}" for r in late) or "none"
        false = sum(len(run[value]["false"]) for run in runs)
        print(f"| {value:g} | {len(rows) - len(late)} of {len(rows)} | {spread} | {named} |"
              f" {false} |")  # fmt: skip


if __name__ == "__main__":
    main()
