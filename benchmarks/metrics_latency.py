"""Event -> visible on /metrics: how long after a store sends an event its worker counts it.

    python -m benchmarks.metrics_latency [--rate 30000] [--seconds 20]

Produces a simulated Double 11 stream at an average rate of `--rate` events/s (batched
messages of 100 events; the midnight surge makes it uneven) while polling the worker's
`/metrics` every 50 ms. The producer records when it had sent its n-th event; the poller
when the worker's funnel counter (`salewatch_processed_events_total{step="funnel"}`, what
the dashboards' counters move with) first showed n. The difference, read off the two
curves, is the latency of event n, to within one poll. A small warm-up scenario goes first
so that start-up is not measured. Prints p50/p99/max for salewatch at
`--rate` and for the naive Faust baseline (benchmarks/naive_faust.py) at `--naive-rate`.
Needs the local stack.
"""

from __future__ import annotations

import argparse
import bisect
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.pipeline_throughput import naive_processed, salewatch_processed
from simulator import ScenarioConfig, generate, produce
from tests.support.stack import Stack, ensure_stack
from tests.support.worker import Worker, WorkerFactory

POLL_S = 0.05
BATCH_EVENTS = 100


def measure(
    stack: Stack, tmp: Path, module: str, read: Callable[[Worker], float], rate: float,
    seconds: float,
) -> list[float]:  # fmt: skip
    """Latencies (s) of the events counted at each poll while producing at `rate`."""
    scenario = generate(ScenarioConfig(seed=7, duration_s=600, base_rate=rate * seconds / 600))
    factory = WorkerFactory(stack, tmp / module.replace(".", "_"))
    factory.tmp.mkdir(parents=True)
    worker = factory.start(module=module)
    # warm up: the clock starts once the worker has counted a first small scenario
    warm_up = generate(ScenarioConfig(seed=8, duration_s=60, base_rate=20))
    produce(warm_up, stack.kafka_bootstrap, factory.topic_prefix, compression=None)
    while read(worker) < len(warm_up):
        time.sleep(POLL_S)
    sent_at: list[float] = []  # time the producer had sent sent_counts[i] events
    sent_counts: list[int] = []

    def record(sent: int, _total: int) -> None:
        sent_at.append(time.perf_counter())
        sent_counts.append(sent)

    speed = 600 / seconds  # event-seconds per wall second
    producer = threading.Thread(
        target=produce,
        args=(scenario, stack.kafka_bootstrap, factory.topic_prefix, speed),
        kwargs={"max_events": BATCH_EVENTS, "progress": record, "compression": None},
    )
    seen: list[tuple[float, float]] = []
    try:
        producer.start()
        deadline = time.perf_counter() + seconds * 3 + 30
        while time.perf_counter() < deadline:
            count = read(worker) - len(warm_up)
            seen.append((time.perf_counter(), count))
            if count >= len(scenario):
                break
            time.sleep(POLL_S)
        producer.join()
    finally:
        factory.stop_all()
    return [polled_at - sent_time(sent_at, sent_counts, count) for polled_at, count in seen
            if 0 < count <= sent_counts[-1]]  # fmt: skip


def sent_time(sent_at: list[float], sent_counts: list[int], count: float) -> float:
    """When the producer sent its `count`-th event (interpolated between its reports)."""
    index = bisect.bisect_left(sent_counts, count)
    if index == 0:
        return sent_at[0]
    n0, n1 = sent_counts[index - 1], sent_counts[index]
    t0, t1 = sent_at[index - 1], sent_at[index]
    return t0 + (t1 - t0) * (count - n0) / (n1 - n0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=30_000, help="salewatch events/s")
    parser.add_argument("--naive-rate", type=float, default=2_500, help="naive events/s")
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    stack = ensure_stack()
    print("| pipeline | events/s sent | polls | p50 | p99 | max |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, module, read, rate in (
            ("salewatch", "streams", salewatch_processed, args.rate),
            ("naive Faust", "benchmarks.naive_faust", naive_processed, args.naive_rate),
        ):
            latencies = measure(stack, Path(tmp), module, read, rate, args.seconds)
            print(f"| {name} | {rate:,.0f} | {len(latencies)} | "
                  f"{percentile(latencies, 0.5) * 1000:,.0f} ms | "
                  f"{percentile(latencies, 0.99) * 1000:,.0f} ms | "
                  f"{max(latencies) * 1000:,.0f} ms |")  # fmt: skip


if __name__ == "__main__":
    main()
