"""Differential runs: random arrival schedules against real workers, windows vs the truth.

    python -m benchmarks.differential --runs 20 --seed 1 [--no-sigkill]

Draws `--runs` schedules with the generator of tests/integration/test_differential.py
(tests/support/differential.py: batch size, grouping, linger, keys, a lagging topic,
backfill or paced, workers before or after the data, one or two, a restart mid-run with
SIGTERM or SIGKILL) from `random.Random(seed)`: the same seed draws the same schedules
(scenarios start relative to the wall clock, so windows align a little differently). Each
runs on fresh topics with its own workers; prints per run the schedule and the share of
final windows that equal the truth per field (counts, paid orders, GMV, UV within its
sketch bounds, emitted once), then the totals and the failing schedules. Needs the local
stack; a SIGKILL run waits out the group's 60 s session timeout.
"""

from __future__ import annotations

import argparse
import random
import signal
import tempfile
from pathlib import Path

from tests.support.differential import (
    FIELDS,
    RandomChooser,
    RunResult,
    random_schedule,
    run_schedule,
)
from tests.support.stack import ensure_stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-sigkill", action="store_true", help="restart with SIGTERM only")
    args = parser.parse_args()
    signals = [signal.SIGTERM] if args.no_sigkill else [signal.SIGTERM, signal.SIGKILL]
    chooser = RandomChooser(random.Random(args.seed))
    stack = ensure_stack()
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.runs):
            schedule = random_schedule(chooser, signals)
            print(f"[{index + 1}/{args.runs}] {schedule.describe()}", flush=True)
            result = run_schedule(stack, Path(tmp) / f"run{index}", schedule)
            results.append(result)
            print(f"    {result.summary()}", flush=True)
    print(totals(results))


def totals(results: list[RunResult]) -> str:
    windows = sum(r.windows for r in results)
    rates = ", ".join(
        f"{name} {sum(r.matches[name] for r in results) / windows:.2%}" for name in FIELDS
    )
    compared = [r for r in results if r.outcomes_match is not None]
    failing = [r for r in results if not r.windows_exact or r.outcomes_match is False]
    lines = [
        f"\ntotal: {len(results)} runs, {sum(r.events for r in results)} events, "
        f"{windows} windows; equal to the truth: {rates}",
        f"runs with every window exact and once: {sum(r.windows_exact for r in results)}"
        f"/{len(results)}; windows missing {sum(r.missing for r in results)}, unexpected "
        f"{sum(r.unexpected for r in results)}, emitted twice {sum(r.twice for r in results)}",
        f"outcome counters equal to the truth: {sum(bool(r.outcomes_match) for r in compared)}"
        f"/{len(compared)} runs that can be compared (one worker, no restart, copies in order)",
        f"failing schedules: {len(failing)}",
    ]
    lines += [result.report(limit=5) for result in failing]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
