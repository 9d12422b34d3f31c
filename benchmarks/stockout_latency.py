"""Stock-out to Alertmanager while the worker carries a live sale at a given rate.

    python -m benchmarks.stockout_latency [--rate 12000] [--stockouts 40]

One worker with the dev stack's Alertmanager. A simulated sale is produced live (event
time = now, paced at `--rate` events/s, batched like benchmarks/end_to_end.py) into its
inputs; meanwhile, once a second, a SKU of a store of its own gets a stock snapshot of 3
units and then the order that takes all 3. Each latency runs from producing that order to
Alertmanager's API listing the `StockOut` alert (polled every 20 ms). Set `--rate` to half
the worker's measured capacity (benchmarks/end_to_end.py) for the design target (p99 <= 1 s
at half load); prints p50 / p99 / max and the rate the producer really kept up, then the
same per hop, from the Kafka timestamps of each stock-out's records: the order produced to
its routed event (stage 1), to its stock change (stage 2), to its `StockOut` record on the
alerts topic (inventory and alert stages), to Alertmanager listing it (the post and the poll).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from kafka import KafkaProducer  # type: ignore[import-untyped]

from benchmarks.end_to_end import arrival_of
from simulator import ScenarioConfig, generate, send, starting_ago
from streams.runtime.collector import freeze_startup_objects
from tests.support.alerts import am_alerts, wait_for
from tests.support.events import make_event
from tests.support.kafka import consume, end_offsets
from tests.support.stack import ensure_stack
from tests.support.worker import WorkerFactory

WARM_UP_S = 5.0
BETWEEN_S = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=12_000, help="events/s of the sale")
    parser.add_argument("--stockouts", type=int, default=40)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    stack = ensure_stack()
    duration_s = WARM_UP_S + args.stockouts * BETWEEN_S * 1.5 + 10
    config = ScenarioConfig(
        seed=5, duration_s=duration_s, base_rate=args.rate, rush_minutes=0, flash_sales=()
    )
    scenario = generate(starting_ago(config, 0))
    messages = arrival_of("batched", args.batch, speed=1.0).messages(scenario)
    # the sale's events live to the end: out of the collector's reach, or its full
    # collections (0.9 s seen) stall the threads that time the stock-outs
    freeze_startup_objects()
    with tempfile.TemporaryDirectory() as tmp_dir:
        factory = WorkerFactory(stack, Path(tmp_dir))
        try:
            factory.start(alertmanager_url=stack.alertmanager_url)
            sale: dict[str, float] = {}

            def produce_sale() -> None:
                report = send(messages, stack.kafka_bootstrap, factory.topic_prefix, speed=1.0)
                sale["events_per_s"] = report.events_per_s

            producer = threading.Thread(target=produce_sale, daemon=True)
            producer.start()
            time.sleep(WARM_UP_S)
            # one producer, connected before the clock starts, as a store's would be
            orders = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
            try:
                measured = [measure(factory, orders, i) for i in range(args.stockouts)]
            finally:
                orders.close()
            producer.join()
            hops = hop_seconds(factory, measured)
        finally:
            factory.stop_all()
    latencies = [m.latency for m in measured]
    ordered = sorted(latencies)
    print(
        f"sale produced at {sale.get('events_per_s', 0):,.0f} events/s (asked {args.rate:,.0f});"
        f" stock-out -> Alertmanager over {len(latencies)} stock-outs: {percentiles(latencies)};"
        f" all, sorted (ms): {[round(x * 1000) for x in ordered]};"
        f" in order (ms): {[round(x * 1000) for x in latencies]};"
        f" load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    for hop, seconds in hops.items():
        print(f"  {hop}: {percentiles(seconds)} ({len(seconds)} found)")


@dataclass(frozen=True)
class StockOut:
    sku: str
    order_id: str
    sent_ms: float  # wall clock, as Kafka's record timestamps
    latency: float


def percentiles(seconds: list[float]) -> str:
    if not seconds:
        return "none"
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms,"
        f" max {ordered[-1] * 1000:.0f} ms"
    )


def hop_seconds(factory: WorkerFactory, measured: list[StockOut]) -> dict[str, list[float]]:
    """Each hop's seconds per stock-out, from the first record of it on each topic (by Kafka
    record timestamp) produced after its order."""
    store = f'"lat-{factory.run_id}"'.encode()
    bootstrap = factory.stack.kafka_bootstrap

    def first_times(topic: str, needle: Callable[[StockOut], bytes]) -> list[float | None]:
        total = sum(end_offsets(bootstrap, [topic]).values())
        records = [r for r in consume(bootstrap, topic, total) if store in r.value]
        return [
            min((r.timestamp for r in records
                 if needle(m) in r.value and r.timestamp >= m.sent_ms), default=None)
            for m in measured
        ]  # fmt: skip

    marks: list[list[float | None]] = [
        [m.sent_ms for m in measured],
        first_times(factory.output_topic("events"), lambda m: f'"{m.order_id}"'.encode()),
        first_times(factory.output_topic("stock"), lambda m: f'"{m.sku}"'.encode()),
        first_times(factory.output_topic("alerts"), lambda m: f'"{m.sku}"'.encode()),
        [m.sent_ms + m.latency * 1000 for m in measured],
    ]
    names = (
        "stage 1 (order to routed event)",
        "stage 2 (to stock change)",
        "inventory + alert stage (to StockOut record)",
        "Alertmanager (post + poll)",
    )
    hops: dict[str, list[float]] = {}
    for name, (before, after) in zip(names, itertools.pairwise(marks), strict=True):
        hops[name] = [(b - a) / 1000 for a, b in zip(before, after, strict=True)
                      if a is not None and b is not None]  # fmt: skip
    return hops


def measure(factory: WorkerFactory, producer: KafkaProducer, index: int) -> StockOut:
    """One stock-out: seconds from producing the emptying order to Alertmanager."""
    store_id, sku = f"lat-{factory.run_id}", f"sku-{index}"

    def send_one(topic: str, event: dict[str, object]) -> None:
        value = orjson.dumps([event])
        producer.send(factory.input_topic(topic), value, key=store_id.encode())
        producer.flush()

    send_one("inventory", make_event("stock_snapshot", store_id=store_id, sku=sku, available=3))
    time.sleep(BETWEEN_S / 2)  # the snapshot applied: the order below is what sells out
    line = {"sku": sku, "qty": 3, "unit_price": "10.00"}
    order = make_event("order_created", store_id=store_id, order_id=f"o-{index}",
                       lines=[line], amount=30)  # fmt: skip
    sent_ms = time.time() * 1000
    started = time.perf_counter()
    send_one("orders", order)
    am = factory.stack.alertmanager_url
    wait_for(lambda: am_alerts(am, alertname="StockOut", store_id=store_id, sku=sku),
             timeout_s=30, interval_s=0.02)  # fmt: skip
    latency = time.perf_counter() - started
    time.sleep(max(0.0, BETWEEN_S / 2 - latency))
    return StockOut(sku, f"o-{index}", sent_ms, latency)


if __name__ == "__main__":
    main()
