"""End-to-end events/s: first event read to last final window out, against naive Faust.

    python -m benchmarks.end_to_end [--events 600000] [--runs 3] [--workers 1 2]
        [--inputs batched single] [--naive-events 20000] [--paced-rate 40000] [--baseline REV]

A simulated sale (steady traffic, 4 stores, the flagship half of it) is written to Kafka
before any worker starts ("preloaded": a backlog, what a worker catching up sees) twice:
as batched messages (up to `--batch` events of one topic each) and one event per message.
Each input partition then gets one event more, a window and the grace later than the
sale's end (a copy of a real event under a new id), so the sale's last windows close on
event time as they would in a continuous stream, not after the inputs have been idle for
SALEWATCH_IDLE_MS and the window end plus grace has passed on the wall clock. For each input
set and worker count, fresh workers (fresh consumer groups and outputs) read it; a run is
timed from the first routed events stage 1 wrote (the Kafka timestamp of the first record
of salewatch.events: the first batch read, validated and routed) to the last final window
on salewatch.windows, and to the last stock change the inventory agent applied (polled
from /metrics every second). Worker start-up (Faust, the group join) is printed apart.
The naive baseline (benchmarks/naive_faust.py: per-message agents, pydantic, a windowed
table) reads the same kind of inputs in the same run, timed from its first counted event
to its last (polled every 0.05 s).

With `--baseline REV` the same runs are repeated with workers started from that commit's
tree (`git archive`), the two trees taking turns going first (the second reader of the same
inputs tended to be faster): a lift measured before and after in one run.

A live paced run follows (`--paced-rate`, 1 worker, batched): the producer sends the
scenario at that rate into a running, idle worker; timed from the first event produced to
the last final window. It shows whether the worker keeps up; the tail is the time from the
last send (the closing events included) to the last final window.

Per run: events/s; CPU seconds per million events of each process kind (stage 1, the
worker's stages 2 and 3, the broker, which is shared with anything else using the stack)
over the timed span; peak RSS; "producer buffer full" warnings in the workers' logs.
Prints min / median / max over `--runs` and the machine's load average. Needs the local
stack (`make stack-up`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # type: ignore[import-untyped]

from benchmarks.process_usage import Poller, UsageSampler, children
from simulator import Arrival, Grouping, Scenario, ScenarioConfig, generate, send, starting_ago
from tests.support.differential import metric_samples
from tests.support.kafka import delete_topics
from tests.support.stack import REPO, Stack, ensure_stack
from tests.support.windows import WindowId, window_id
from tests.support.worker import Worker, WorkerFactory

DURATION_S = 600
TIMEOUT_S = 600.0
METRICS_POLL_S = 1.0  # a scrape costs the worker CPU: as often as a tight Prometheus
BUFFER_FULL = "producer buffer full"
NAIVE = "naive Faust"


@dataclass(frozen=True)
class Inputs:
    """Input topics written once, read by every run of one input kind."""

    name: str
    prefix: str
    events: int
    windows: frozenset[WindowId]
    naive: bool  # the naive baseline's (smaller) inputs


@dataclass
class Run:
    inputs: str
    pipeline: str
    workers: int
    events: int
    seconds: float  # first event in -> last final window out
    stock_seconds: float | None  # first event in -> last stock change applied
    startup_seconds: float  # worker launch -> first event in (preloaded) / first send (paced)
    cpu: dict[str, float]  # role -> CPU seconds over the timed span
    peak_mib: dict[str, float]
    buffer_full: int
    tail_seconds: float | None = None  # paced: last send -> last final window

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def cpu_per_million(self, role: str) -> float | None:
        return self.cpu[role] / self.events * 1e6 if role in self.cpu else None


def scenario_of(events: int, seed: int) -> Scenario:
    """Steady traffic (no rush, no flash sale) ending two windows and the grace before now."""
    config = ScenarioConfig(
        seed=seed,
        duration_s=DURATION_S,
        base_rate=events / DURATION_S,
        rush_minutes=0,
        flash_sales=(),
    )
    return generate(starting_ago(config, DURATION_S + 180))


def arrival_of(kind: str, batch: int, speed: float | None = None) -> Arrival:
    if kind == "batched":  # a topic's events of a quarter of the grace in one message
        linger_ms = ScenarioConfig.grace_ms // 4
        return Arrival(batch, linger_ms, Grouping.TOPIC, speed=speed)
    return Arrival(max_events=500, grouping=Grouping.RECORDS, speed=speed)


def preload(stack: Stack, scenario: Scenario, kind: str, batch: int, naive: bool) -> Inputs:
    prefix = f"e2e{os.getpid()}{kind}{'-naive' if naive else ''}.shop."
    report = send(arrival_of(kind, batch).messages(scenario), stack.kafka_bootstrap, prefix)
    send_closers(stack.kafka_bootstrap, prefix, scenario)
    print(f"  preloaded {prefix}: {report.events:,} events in {report.messages:,} "
          f"messages, {report.events_per_s:,.0f} events/s produced", flush=True)  # fmt: skip
    return Inputs(kind, prefix, len(scenario), frozenset(scenario.truth.windows), naive)


def send_closers(bootstrap: str, prefix: str, scenario: Scenario) -> None:
    """To every input partition, a copy of one of its topic's events under a new id, a
    window and the grace after the sale's end: stream time passes the sale's last windows."""
    config = scenario.config
    end_ms = int(config.start.timestamp() * 1000 + config.duration_s * 1000)
    ts_ms = end_ms + config.window_ms + config.grace_ms + 1_000
    last = {delivery.topic: delivery.event for delivery in scenario.deliveries}
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for topic, event in last.items():
            for p in sorted(producer.partitions_for(prefix + topic)):
                closer = {**event, "ts": ts_ms, "event_id": f"closer-{topic}-{p}"}
                if "order_id" in closer:
                    closer["order_id"] = f"closer-{p}"
                producer.send(prefix + topic, orjson.dumps(closer), partition=p)
        producer.flush()
    finally:
        producer.close()


def first_timestamp(bootstrap: str, topics: list[str], accept: Callable[[bytes], bool]) -> float:
    """Wall-clock seconds of the earliest record of `topics` whose value `accept`s."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if ends[tp] > 0}
        earliest = float("inf")
        while pending:
            for tp, records in consumer.poll(timeout_ms=500).items():
                if tp not in pending:
                    continue
                found = next((r for r in records if accept(r.value)), None)
                if found is not None:
                    earliest = min(earliest, found.timestamp / 1000)
                    pending.discard(tp)
                    consumer.pause(tp)
                elif records[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
        return earliest
    finally:
        consumer.close()


def last_window_timestamp(
    bootstrap: str, topic: str, expected: frozenset[WindowId], timeout_s: float
) -> float:
    """Wall-clock seconds of the last final window of `expected`, once all are out."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    seen: set[WindowId] = set()
    last = 0.0
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < len(expected):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(seen)} of {len(expected)} windows after {timeout_s:.0f} s"
                )
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    window = window_id(orjson.loads(record.value))
                    if window in expected:
                        seen.add(window)
                        last = max(last, record.timestamp / 1000)
        return last
    finally:
        consumer.close()


class StockWatch(Poller):
    """Polls the workers' applied stock changes; remembers when the sum last moved."""

    def __init__(self, workers: list[Worker]) -> None:
        super().__init__(METRICS_POLL_S)
        self._workers = workers
        self.applied = 0.0
        self.last_change = 0.0

    def sample(self) -> None:
        applied = 0.0
        for worker in self._workers:
            try:
                samples = metric_samples(worker.metrics(), "salewatch_processed_events_total")
            except OSError:
                continue
            applied += sum(v for labels, v in samples if labels.get("step") == "inventory")
        if applied > self.applied:
            self.applied, self.last_change = applied, time.time()


def source_tree(rev: str, tmp: Path) -> Path:
    """The repository's files at `rev`, unpacked under `tmp`."""
    tree = tmp / "baseline"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def kafka_pid() -> list[int]:
    pid_file = REPO / ".stack" / "run" / "kafka.pid"
    return [int(pid_file.read_text())] if pid_file.exists() else []


def roles_of(workers: list[Worker]) -> Callable[[], dict[str, list[int]]]:
    def roles() -> dict[str, list[int]]:
        pids = [w.process.pid for w in workers]
        stage1 = [child for pid in pids for child in children(pid, "spawn_main")]
        return {"stage 1": stage1, "worker": pids, "broker": kafka_pid()}

    return roles


def buffer_warnings(workers: list[Worker]) -> int:
    return sum(worker.log().count(BUFFER_FULL) for worker in workers)


def run_salewatch(
    stack: Stack, tmp: Path, inputs: Inputs, workers: int, tree: tuple[str, Path]
) -> Run:
    label, repo = tree
    factory = WorkerFactory(stack, tmp, repo=repo)
    factory.tmp.mkdir(parents=True)
    started: list[Worker] = []
    try:
        launched = time.time()
        with UsageSampler(roles_of(started)) as usage:
            for _ in range(workers):  # together: one group join, no rebalance mid-run
                started.append(factory.start(False, topic_prefix=inputs.prefix))
            with StockWatch(started) as stock:
                for worker in started:
                    factory.wait_healthy(worker)
                end = last_window_timestamp(
                    stack.kafka_bootstrap, factory.output_topic("windows"), inputs.windows,
                    TIMEOUT_S,
                )  # fmt: skip
                time.sleep(2 * METRICS_POLL_S)  # the stock poll's last look
        begin = first_timestamp(stack.kafka_bootstrap, [factory.output_topic("events")],
                                lambda value: value.startswith(b"["))  # fmt: skip
        return Run(
            inputs.name, label, workers, inputs.events, end - begin,
            stock.last_change - begin if stock.applied else None, begin - launched,
            usage.cpu_between(begin, end), usage.peak_mib, buffer_warnings(started),
        )  # fmt: skip
    finally:
        factory.stop_all()


def run_naive(stack: Stack, tmp: Path, inputs: Inputs) -> Run:
    factory = WorkerFactory(stack, tmp)
    factory.tmp.mkdir(parents=True)
    try:
        launched = time.time()
        worker = factory.start(False, module="benchmarks.naive_faust", topic_prefix=inputs.prefix)
        with UsageSampler(roles_of([worker])) as usage:
            factory.wait_healthy(worker, "/count")
            begin = end = 0.0
            deadline = time.monotonic() + TIMEOUT_S
            while end == 0.0:
                if time.monotonic() > deadline:
                    raise TimeoutError("naive worker did not count every event")
                counted = orjson.loads(worker.get("/count")[1])["events"]
                now = time.time()
                if counted and not begin:
                    begin = now
                if counted >= inputs.events:
                    end = now
                time.sleep(0.05)
        usage_cpu = usage.cpu_between(begin, end)
        usage_cpu.pop("stage 1", None)
        return Run(inputs.name, NAIVE, 1, inputs.events, max(end - begin, 0.05), None,
                   begin - launched, usage_cpu, usage.peak_mib, 0)  # fmt: skip
    finally:
        factory.stop_all()


def run_paced(stack: Stack, tmp: Path, scenario: Scenario, batch: int, rate: float) -> Run:
    factory = WorkerFactory(stack, tmp)
    factory.tmp.mkdir(parents=True)
    speed = DURATION_S * rate / len(scenario)  # event seconds per wall second
    try:
        launched = time.time()
        worker = factory.start()
        with UsageSampler(roles_of([worker])) as usage, StockWatch([worker]) as stock:
            messages = arrival_of("batched", batch, speed).messages(scenario)
            send(messages, stack.kafka_bootstrap, factory.topic_prefix, speed)
            send_closers(stack.kafka_bootstrap, factory.topic_prefix, scenario)
            sent = time.time()
            end = last_window_timestamp(stack.kafka_bootstrap, factory.output_topic("windows"),
                                        frozenset(scenario.truth.windows), TIMEOUT_S)  # fmt: skip
            time.sleep(2 * METRICS_POLL_S)
        inputs = [factory.input_topic(t) for t in scenario.deliveries_by_topic()]
        begin = first_timestamp(stack.kafka_bootstrap, inputs, lambda value: True)
        return Run(
            f"paced {rate:,.0f}/s", "salewatch", 1, len(scenario), end - begin,
            stock.last_change - begin if stock.applied else None, begin - launched,
            usage.cpu_between(begin, end), usage.peak_mib, buffer_warnings([worker]),
            tail_seconds=end - sent,
        )  # fmt: skip
    finally:
        factory.stop_all()


@dataclass
class Table:
    runs: list[Run] = field(default_factory=list)

    def add(self, run: Run) -> None:
        self.runs.append(run)
        cpu = ", ".join(f"{role} {run.cpu_per_million(role):.1f}" for role in sorted(run.cpu))
        stock = f"{run.stock_seconds:.2f}" if run.stock_seconds is not None else "-"
        tail = f", tail {run.tail_seconds:.2f} s" if run.tail_seconds is not None else ""
        print(f"    {run.inputs:20} {run.pipeline:11} x{run.workers} {run.rate:>9,.0f} events/s "
              f"({run.seconds:.2f} s, stock {stock} s, start-up {run.startup_seconds:.1f} s"
              f"{tail}); CPU s/1M events: {cpu}; buffer-full warnings {run.buffer_full}",
              flush=True)  # fmt: skip

    def print(self) -> None:
        print("\n| input | pipeline | workers | events | events/s min / median / max "
              "| x naive (median) | to last stock change, s (median) "
              "| CPU s per 1M events: stage 1 / worker / broker (median) "
              "| peak RSS MiB: stage 1 / worker | producer-buffer-full warnings |")  # fmt: skip
        print("|---|---|---:|---:|---|---:|---:|---|---|---:|")
        groups: dict[tuple[str, str, int], list[Run]] = {}
        for run in self.runs:
            groups.setdefault((run.inputs, run.pipeline, run.workers), []).append(run)
        for (inputs, pipeline, workers), runs in groups.items():
            rates = [run.rate for run in runs]
            naive = [r.rate for r in self.runs if r.inputs == inputs and r.pipeline == NAIVE]
            ratio = f"{statistics.median(rates) / statistics.median(naive):.1f}" if naive else "-"
            stock = [r.stock_seconds for r in runs if r.stock_seconds is not None]
            cpu = " / ".join(_median_or_dash([r.cpu_per_million(role) for r in runs])
                             for role in ("stage 1", "worker", "broker"))  # fmt: skip
            rss = " / ".join(f"{max(r.peak_mib.get(role, 0) for r in runs):.0f}"
                             for role in ("stage 1", "worker"))  # fmt: skip
            print(f"| {inputs} | {pipeline} | {workers} | {runs[0].events:,} | "
                  f"{min(rates):,.0f} / {statistics.median(rates):,.0f} / {max(rates):,.0f} | "
                  f"{ratio} | {_median_or_dash(stock)} | {cpu} | {rss} | "
                  f"{sum(r.buffer_full for r in runs)} |")  # fmt: skip


def _median_or_dash(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):.2f}" if known else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500, help="events per batched message")
    parser.add_argument("--inputs", nargs="+", choices=("batched", "single"),
                        default=["batched", "single"])  # fmt: skip
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--naive-events", type=int, default=20_000,
                        help="events for the (slow) naive baseline; 0: none")  # fmt: skip
    parser.add_argument("--paced-rate", type=float, default=40_000,
                        help="events/s of the live paced run; 0: none")  # fmt: skip
    parser.add_argument("--baseline", metavar="REV",
                        help="also run workers from this commit (before, after)")  # fmt: skip
    args = parser.parse_args()

    stack = ensure_stack()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} cores", flush=True)  # fmt: skip
    scenario = scenario_of(args.events, seed=3)
    naive_scenario = scenario_of(args.naive_events, seed=4) if args.naive_events else None
    print(f"scenario: {len(scenario):,} events, {len(scenario.truth.windows)} windows", flush=True)
    table = Table()
    preloaded: list[Inputs] = []
    try:
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            trees = [("salewatch", REPO)]
            if args.baseline:
                trees.append((f"salewatch@{args.baseline}", source_tree(args.baseline, tmp)))
            for kind in args.inputs:
                preloaded.append(preload(stack, scenario, kind, args.batch, naive=False))
                if naive_scenario is not None:
                    preloaded.append(preload(stack, naive_scenario, kind, args.batch, naive=True))
            for index in range(args.runs):
                print(f"run {index + 1} of {args.runs}", flush=True)
                for inputs in preloaded:
                    if inputs.naive:
                        table.add(run_naive(stack, tmp / f"{index}-{inputs.prefix}", inputs))
                        continue
                    for workers in args.workers:
                        # the trees take turns going first: the second reader of the same
                        # inputs tended to be faster (up to 1.2x)
                        turn = trees[index % len(trees) :] + trees[: index % len(trees)]
                        for tree in turn:
                            path = tmp / f"{index}-{inputs.prefix}{workers}-{trees.index(tree)}"
                            table.add(run_salewatch(stack, path, inputs, workers, tree))
                if args.paced_rate:
                    table.add(run_paced(stack, tmp / f"{index}-paced", scenario, args.batch,
                                        args.paced_rate))  # fmt: skip
    finally:
        delete_topics(stack.kafka_bootstrap, [inputs.prefix for inputs in preloaded])
    table.print()
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
