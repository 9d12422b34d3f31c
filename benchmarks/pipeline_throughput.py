"""Events/s of one salewatch worker, full pipeline, against a naive Faust baseline.

    python -m benchmarks.pipeline_throughput [--events 200000] [--batch 500]

Generates a Double 11 scenario with the simulator, produces it twice to the local broker
(batched messages, then one event per message), and times one worker from its first to its
last event through stage 2 (ingest, validation, routing, dedup, order state, windows, stock
changes). The naive baseline (benchmarks/naive_faust.py: per-message Faust agent, pydantic,
windowed table) reads the same topics in the same run. Needs the local stack
(`make stack-up`); prints a table.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import orjson

from simulator import ScenarioConfig, generate, produce
from tests.support.stack import ensure_stack
from tests.support.worker import Worker, WorkerFactory

POLL_S = 0.05


def salewatch_processed(worker: Worker) -> float:
    match = re.search(r'^salewatch_processed_events_total\{step="funnel"\} (\S+)$',
                      worker.metrics(), re.M)  # fmt: skip
    return float(match.group(1)) if match else 0.0


def naive_processed(worker: Worker) -> float:
    return float(orjson.loads(worker.get("/count")[1])["events"])


def time_worker(worker: Worker, read: object, total: int, timeout_s: float) -> float:
    """Seconds from the first processed event to the last (polled)."""
    assert callable(read)
    deadline = time.monotonic() + timeout_s
    first = None
    while time.monotonic() < deadline:
        done = read(worker)
        now = time.monotonic()
        if first is None and done > 0:
            first = now
        if done >= total:
            assert first is not None
            return max(now - first, POLL_S)
        time.sleep(POLL_S)
    raise TimeoutError(f"{read.__name__}: {read(worker)} of {total} after {timeout_s}s")  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500, help="events per batched message")
    parser.add_argument("--naive-events", type=int, default=20_000,
                        help="events for the (slow) naive baseline")  # fmt: skip
    args = parser.parse_args()

    stack = ensure_stack()
    rate = args.events / 600
    scenario = generate(ScenarioConfig(seed=3, duration_s=600, base_rate=rate))
    events = len(scenario)
    naive_scenario = generate(
        ScenarioConfig(seed=4, duration_s=600, base_rate=args.naive_events / 600)
    )
    print(f"scenario: {events} events (naive baseline: {len(naive_scenario)})")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode, per_message in (("batched", args.batch), ("one event per message", 1)):
            for name, module, scenario_used, read in (
                ("salewatch", "streams", scenario, salewatch_processed),
                ("naive Faust", "benchmarks.naive_faust", naive_scenario, naive_processed),
            ):
                factory = WorkerFactory(stack, Path(tmp) / f"{mode}-{name}".replace(" ", "_"))
                factory.tmp.mkdir(parents=True)
                produce(scenario_used, stack.kafka_bootstrap, factory.topic_prefix,
                        max_events=per_message)  # fmt: skip
                worker = factory.start(module=module)
                try:
                    seconds = time_worker(worker, read, len(scenario_used), timeout_s=600)
                finally:
                    factory.stop_all()
                rows.append((mode, name, len(scenario_used), seconds))
                print(f"  {mode:22} {name:12} {len(scenario_used) / seconds:>10,.0f} events/s")

    print("\n| mode | pipeline | events | seconds | events/s | x naive |")
    print("|---|---|---:|---:|---:|---:|")
    for mode, name, n, seconds in rows:
        naive = next(n2 / s2 for m2, nm2, n2, s2 in rows if m2 == mode and nm2 == "naive Faust")
        print(f"| {mode} | {name} | {n} | {seconds:.2f} | {n / seconds:,.0f} | "
              f"{(n / seconds) / naive:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
