"""Events/s of the simulator: generating a scenario, and producing it to the local Kafka.

    python -m benchmarks.simulator_throughput [--events 500000] [--no-kafka]

Generates a scenario of about `--events` events (10 minutes of event time, no rush), times
generation (traffic, inventory, delivery faults and ground truth) and batching, then
produces it to fresh topics on the local broker (`.stack/env.json`, else 127.0.0.1:19092)
with kafka-python, acks=all, once per compression setting, and deletes the topics again.
Prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from simulator import ScenarioConfig, batches, generate, produce
from simulator.producer import best_compression
from simulator.topics import TOPICS

REPO = Path(__file__).resolve().parents[1]
DURATION_S = 600.0


def bootstrap_servers(explicit: str | None) -> str:
    if explicit:
        return explicit
    env = REPO / ".stack" / "env.json"
    if env.exists():
        return str(json.loads(env.read_text())["kafka_bootstrap"])
    return os.environ.get("SALEWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:19092")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=500, help="events per message")
    parser.add_argument("--bootstrap", default=None)
    parser.add_argument("--no-kafka", action="store_true")
    args = parser.parse_args()

    config = ScenarioConfig(
        seed=1,
        duration_s=DURATION_S,
        base_rate=args.events / DURATION_S,
        rush_minutes=0,
        flash_sales=(),
    )
    rows: list[tuple[str, int, float]] = []
    started = time.perf_counter()
    scenario = generate(config)
    rows.append(("generate (with ground truth)", len(scenario), time.perf_counter() - started))
    started = time.perf_counter()
    messages = batches(scenario, max_events=args.batch)
    rows.append(
        (f"batch ({len(messages):,} messages)", len(scenario), time.perf_counter() - started)
    )

    if not args.no_kafka:
        from kafka.admin import KafkaAdminClient, NewTopic  # type: ignore[import-untyped]

        bootstrap = bootstrap_servers(args.bootstrap)
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="simulator-benchmark")
        codecs = [best_compression(), None]
        for codec in dict.fromkeys(codecs):
            prefix = f"bench-sim-{int(time.time() * 1000)}."
            topics = [prefix + topic for topic in TOPICS]
            admin.create_topics([NewTopic(t, num_partitions=4, replication_factor=1)
                                 for t in topics])  # fmt: skip
            try:
                report = produce(scenario, bootstrap, prefix, max_events=args.batch,
                                 compression=codec)  # fmt: skip
                rows.append(
                    (f"produce acks=all, {codec or 'no'} compression", report.events,
                     report.seconds)
                )  # fmt: skip
            finally:
                admin.delete_topics(topics)
        admin.close()

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"scenario: {len(scenario):,} deliveries, {DURATION_S:.0f} s of event time\n")
    print("| step | events | seconds | events/s |")
    print("|---|---:|---:|---:|")
    for step, events, seconds in rows:
        print(f"| {step} | {events:,} | {seconds:.2f} | {events / seconds:,.0f} |")


if __name__ == "__main__":
    main()
