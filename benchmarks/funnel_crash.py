"""Funnel windows when a worker is killed (SIGKILL) mid-run and a new one takes over.

    python -m benchmarks.funnel_crash [--kill-at 0.25 0.5 0.75]

The scenario of tests/integration/test_funnel_pipeline.py (random keys, duplicates, late and
out-of-order events) is produced first; one worker (4 partitions) reads it and is killed
once its funnel stage has processed the given share of the events; a new worker takes over
(after the group's 60 s session timeout). Every final window on `salewatch.windows` is then
compared with the ground truth: equal, different, missing, or emitted more than once.
Prints one row per kill point. Needs the local stack.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.pipeline_throughput import salewatch_processed
from simulator import KeyMode, ScenarioConfig, generate, produce
from simulator.scenario import Scenario
from tests.support.kafka import consume
from tests.support.stack import Stack, ensure_stack
from tests.support.windows import window_outcome
from tests.support.worker import WorkerFactory

WINDOW_MS, GRACE_MS = 10_000, 3_000
# `idle_ms` stays the default (10 s): the sale's producer shares a loaded machine, and a
# stall of it longer than `idle_ms` makes every input idle, so the watermark follows the wall
# clock and events the stall held count late though on time in their own partition (with
# 2 s, windows came out short in some runs; the crash suite's `stall` run shows it)
SETTINGS = {"window_ms": WINDOW_MS, "grace_ms": GRACE_MS, "partitions": 4}


def scenario() -> Scenario:
    return generate(
        ScenarioConfig(
            seed=11, duration_s=600, base_rate=170, window_ms=WINDOW_MS, grace_ms=GRACE_MS,
            key_mode=KeyMode.RANDOM, duplicate_rate=0.02, out_of_order_rate=0.1,
            late_rate=0.003,
        )
    )  # fmt: skip


def crash_run(stack: Stack, tmp: Path, run: Scenario, kill_at: float) -> list[Any]:
    """The final window records of a run whose worker is killed at `kill_at`."""
    factory = WorkerFactory(stack, tmp / f"kill-{kill_at}")
    factory.tmp.mkdir(parents=True)
    try:
        produce(run, stack.kafka_bootstrap, topic_prefix=factory.topic_prefix)
        worker = factory.start(**SETTINGS)
        while salewatch_processed(worker) < kill_at * len(run):
            time.sleep(0.01)
        worker.stop(signal.SIGKILL)
        factory.start(wait_healthy=False, **SETTINGS)
        return final_windows(factory, len(run.truth.windows))
    finally:
        factory.stop_all()


def final_windows(factory: WorkerFactory, expected: int, timeout_s: float = 300) -> list[Any]:
    """The run's final window records, once `expected` of them came out (or the time is up)
    and 3 s more for any emitted twice."""
    topic, bootstrap = factory.output_topic("windows"), factory.stack.kafka_bootstrap
    consume(bootstrap, topic, expected, timeout_s=timeout_s)
    time.sleep(3)
    return [orjson.loads(record.value) for record in consume(bootstrap, topic, 2 * expected, 5)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kill-at", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    args = parser.parse_args()
    stack = ensure_stack()
    run = scenario()
    print(f"scenario: {len(run)} events, {len(run.truth.windows)} windows")
    print("| killed after | windows | equal | different | missing | unexpected | emitted twice |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for kill_at in args.kill_at:
            row = window_outcome(crash_run(stack, Path(tmp), run, kill_at), run.truth.windows)
            print(f"| {kill_at:.0%} | " + " | ".join(str(n) for n in row.values()) + " |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
