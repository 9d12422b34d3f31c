"""Differential runs: one arrival schedule of a simulated scenario against real workers,
every final window compared with the simulator's ground truth.

A `Schedule` is everything about how the data reaches the pipeline: the scenario (small,
10 s windows with 3 s grace so many windows close), the producer (`simulator.Arrival`:
batch size, grouping, linger, a lagging topic, pace), keys, a backfill in the past or a
paced run, workers started before or after the data, one or two of them, and a restart
(SIGTERM or SIGKILL, then a new worker) mid-run. `random_schedule()` draws one from a
`Chooser` (random.Random for the benchmark, hypothesis for the test); `run_schedule()`
runs it and returns what matched, against the simulator's accounting of what was sent (each
event judged late on the partition it was written to, as stage 1 does:
`simulator.accounting.account_as_sent`). Used by tests/integration/test_differential.py,
tests/integration/test_backfill.py and benchmarks/differential.py (no pytest here).
"""

from __future__ import annotations

import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from kafka import KafkaConsumer  # type: ignore[import-untyped]

from simulator import (
    Arrival,
    Grouping,
    KeyMode,
    ScenarioConfig,
    generate,
    send,
    starting_ago,
)
from simulator.accounting import account_as_sent
from simulator.topics import TOPICS
from simulator.truth import OUTCOMES, GroundTruth
from tests.support.stack import Stack
from tests.support.windows import WindowId, field_differences, window_id
from tests.support.worker import Worker, WorkerFactory

WINDOW_MS, GRACE_MS = 10_000, 3_000
IDLE_MS = 2_000
FIELDS = ("counts", "paid_orders", "gmv", "uv", "aftersales", "traffic", "buyers", "once")
_SETTLE_S = 3.0  # after the last expected window: anything emitted twice arrives by then
_OUTCOMES_METRIC = "salewatch_event_outcomes_total"
_PROCESSED_METRIC = "salewatch_processed_events_total"

T = TypeVar("T")


class Chooser(Protocol):
    def choice(self, options: Sequence[T]) -> T: ...


@dataclass(frozen=True)
class Restart:
    """Stop the first worker with `signal` and start a new one, once `at` of the events are
    produced (workers started before the data) or processed (workers started after)."""

    at: float
    signal: signal.Signals = signal.SIGTERM


@dataclass(frozen=True)
class Schedule:
    """How one scenario reaches the workers (see the module docstring)."""

    seed: int
    key_mode: KeyMode
    arrival: Arrival
    ago_s: float  # the scenario starts this long before the run (arrival.speed None: a backfill)
    workers_first: bool = True
    idle_before_s: float = 0.0  # workers started first: idle this long before the data
    workers: int = 1
    restart: Restart | None = None
    duration_s: float = 60.0
    base_rate: float = 200.0
    window_ms: int = WINDOW_MS
    grace_ms: int = GRACE_MS
    late_duplicate_rate: float = 0.005
    order_retry_rate: float = 0.2

    def config(self, now_ms: int | None = None) -> ScenarioConfig:
        config = ScenarioConfig(
            seed=self.seed,
            duration_s=self.duration_s,
            base_rate=self.base_rate,
            stores=2,
            skus_per_store=100,
            users=5_000,
            window_ms=self.window_ms,
            grace_ms=self.grace_ms,
            key_mode=self.key_mode,
            duplicate_rate=0.02,
            out_of_order_rate=0.1,
            late_rate=0.005,
            late_duplicate_rate=self.late_duplicate_rate,
            order_retry_rate=self.order_retry_rate,
            flash_sales=(),
            rush_minutes=0,
            snapshot_interval_s=60,
        )
        return starting_ago(config, self.ago_s, now_ms)

    @property
    def outcomes_exact(self) -> bool:
        """Whether the outcome counters must equal the truth: one worker that is never
        restarted (no replay), and every copy of an event in the partition of its original,
        after it (so the pipeline meets a late copy after its original, as the truth does)."""
        keeps_order = self.key_mode is not KeyMode.NONE and self.arrival.grouping is not (
            Grouping.TOPIC
        )
        return (
            self.workers == 1
            and self.restart is None
            and (keeps_order or not self.late_duplicate_rate)
        )

    def describe(self) -> str:
        a = self.arrival
        pace = "backfill" if a.speed is None else f"paced x{a.speed:g}"
        lag = f" lag {a.lag_topic}+{a.lag_ms}ms" if a.lag_topic and a.lag_ms else ""
        restart = (
            f" restart {self.restart.signal.name}@{self.restart.at:.0%}" if self.restart else ""
        )
        return (
            f"seed={self.seed} {self.duration_s:g}s@{self.base_rate:g}/s {pace} "
            f"ago={self.ago_s:g}s keys={self.key_mode.value} {a.grouping.value} "
            f"max_events={a.max_events} linger={a.linger_ms}ms{lag} "
            f"workers={self.workers} {self._start()}{restart}"
        )

    def _start(self) -> str:
        if not self.workers_first:
            return "after data"
        return (
            f"before data (idle {self.idle_before_s:g}s)" if self.idle_before_s else "before data"
        )


def random_schedule(
    choose: Chooser, signals: Sequence[signal.Signals] = (signal.SIGTERM,)
) -> Schedule:
    """A schedule over a small scenario; the pipeline's documented rules make every window
    of it equal to the truth (pauses stay far under the idle time, linger under grace/2)."""
    duration_s = choose.choice([40.0, 60.0, 90.0])
    workers_first = choose.choice([True, False])
    speed = choose.choice([None, 10.0, 30.0]) if workers_first else None
    lag_topic = choose.choice([None, *TOPICS])
    lag_ms = choose.choice([1_000, 5_000, 20_000]) if lag_topic else 0
    if speed is not None:  # a lagging topic must not look idle: its gap under idle/4
        lag_ms = min(lag_ms, int(speed * IDLE_MS / 4))
        ago_s = duration_s * (1 - 1 / speed) + (WINDOW_MS + GRACE_MS) / 1000 + 2
    else:
        ago_s = duration_s + (WINDOW_MS + GRACE_MS) / 1000 + choose.choice([2, 120, 600])
    restart = None
    if choose.choice([False, True]):
        restart = Restart(choose.choice([0.3, 0.6]), choose.choice(signals))
    return Schedule(
        seed=choose.choice(range(1_000_000)),
        key_mode=choose.choice(list(KeyMode)),
        arrival=Arrival(
            max_events=choose.choice([1, 10, 200, 2_000, 10_000]),
            linger_ms=choose.choice([0, 200, 1_000]),
            grouping=choose.choice(list(Grouping)),
            lag_topic=lag_topic,
            lag_ms=lag_ms,
            speed=speed,
        ),
        ago_s=ago_s,
        workers_first=workers_first,
        idle_before_s=choose.choice([0.0, 3.0]) if workers_first else 0.0,
        workers=choose.choice([1, 2]),
        restart=restart,
        duration_s=duration_s,
        base_rate=choose.choice([100.0, 200.0, 400.0]),
    )


@dataclass
class RunResult:
    """What came out of one schedule, against the truth."""

    schedule: Schedule
    events: int
    windows: int  # final windows in the truth
    matches: dict[str, int]  # FIELDS -> truth windows whose record agrees (missing: none)
    missing: int
    unexpected: int
    twice: int
    differences: dict[WindowId, list[str]]
    outcomes: dict[str, dict[str, int]] | None  # the workers' counters; None: no such metric
    expected_outcomes: dict[str, dict[str, int]]
    seconds: float
    log_tail: str = ""

    @property
    def rates(self) -> dict[str, float]:
        return {name: n / self.windows if self.windows else 1.0 for name, n in self.matches.items()}

    @property
    def windows_exact(self) -> bool:
        return all(n == self.windows for n in self.matches.values()) and not self.unexpected

    @property
    def outcomes_match(self) -> bool | None:
        """None when they cannot be compared (no metric, or the schedule replays)."""
        if self.outcomes is None or not self.schedule.outcomes_exact:
            return None
        return self.outcomes == self.expected_outcomes

    def summary(self) -> str:
        rates = " ".join(f"{name} {rate:.1%}" for name, rate in self.rates.items())
        outcomes = {None: "n/a", True: "equal", False: "DIFFERENT"}[self.outcomes_match]
        return (
            f"{self.events} events, {self.windows} windows: {rates}; missing {self.missing}, "
            f"unexpected {self.unexpected}, twice {self.twice}; outcomes {outcomes}; "
            f"{self.seconds:.0f}s"
        )

    def report(self, limit: int = 10) -> str:
        """The summary and the first differing windows, for an assertion message."""
        lines = [self.schedule.describe(), self.summary()]
        for wid, texts in sorted(self.differences.items())[:limit]:
            lines.append(f"  {wid}: {'; '.join(texts)}")
        if self.outcomes_match is False:
            lines.append(f"  outcomes {self.outcomes} != truth {self.expected_outcomes}")
        return "\n".join(lines)


def run_schedule(
    stack: Stack, tmp: Path, schedule: Schedule, timeout_s: float = 240.0
) -> RunResult:
    """Run one schedule on fresh topics; stops its workers and deletes its topics after."""
    scenario = generate(schedule.config())
    started = time.monotonic()
    tmp.mkdir(parents=True, exist_ok=True)
    factory = WorkerFactory(stack, tmp)
    restarts: list[threading.Thread] = []

    def start_worker(wait_healthy: bool = True) -> None:
        factory.start(
            wait_healthy,
            window_ms=schedule.window_ms,
            grace_ms=schedule.grace_ms,
            idle_ms=IDLE_MS,
            partitions=4,
        )

    def restart_now() -> None:
        assert schedule.restart is not None
        factory.started[0].stop(schedule.restart.signal)
        # after SIGKILL the new worker waits out the group's session timeout: not healthy yet
        start_worker(wait_healthy=False)

    def on_progress(sent: int, total: int) -> None:
        if schedule.restart and not restarts and sent >= schedule.restart.at * total:
            restarts.append(threading.Thread(target=restart_now, daemon=True))
            restarts[0].start()

    def start_workers() -> _WindowReader:
        for _ in range(schedule.workers):
            start_worker()
        return _WindowReader(stack.kafka_bootstrap, factory.output_topic("windows"))

    messages = schedule.arrival.messages(scenario)
    reader: _WindowReader | None = None
    try:
        if schedule.workers_first:
            reader = start_workers()
            time.sleep(schedule.idle_before_s)
        sent = send(
            messages,
            stack.kafka_bootstrap,
            factory.topic_prefix,
            schedule.arrival.speed,
            progress=on_progress if schedule.workers_first else None,
        )
        # lateness as the pipeline judges it: per input partition, on the partitions used
        truth = account_as_sent(scenario, messages, sent.partitions)
        if reader is None:
            reader = start_workers()
            if schedule.restart:
                _wait_processed(factory, schedule.restart.at * len(scenario), timeout_s)
                restart_now()
        for thread in restarts:
            thread.join()
        # the last windows close once the wall clock has moved a window and its grace past
        # the last event time (every input idle); a SIGKILL's session timeout adds 60 s
        killed = schedule.restart is not None and schedule.restart.signal == signal.SIGKILL
        quiet_s = (schedule.window_ms + schedule.grace_ms + IDLE_MS) / 1000 + 20
        records = reader.read(len(truth.windows), quiet_s + 70 * killed, timeout_s)
        running = [w for w in factory.started if w.process.poll() is None]
        outcomes = _outcomes(running, factory.topic_prefix)
        log_tail = "".join(w.log()[-2000:] for w in running)
    finally:
        if reader is not None:
            reader.close()
        factory.stop_all()
    return _compare(
        schedule, len(scenario), truth, records, outcomes, time.monotonic() - started, log_tail
    )


def _compare(
    schedule: Schedule,
    events: int,
    truth: GroundTruth,
    records: list[dict[str, Any]],
    outcomes: dict[str, dict[str, int]] | None,
    seconds: float,
    log_tail: str,
) -> RunResult:
    expected = truth.windows
    emitted = Counter(window_id(record) for record in records)
    last = {window_id(record): record for record in records}
    matches = dict.fromkeys(FIELDS, 0)
    differences: dict[WindowId, list[str]] = {}
    for wid, window in expected.items():
        record = last.get(wid)
        if record is None:
            differences[wid] = ["missing"]
            continue
        found = field_differences(record, window)
        found["once"] = [] if emitted[wid] == 1 else [f"emitted {emitted[wid]} times"]
        for name in FIELDS:
            matches[name] += not found[name]
        texts = [text for name in FIELDS for text in found[name]]
        if texts:
            differences[wid] = texts
    for wid in set(emitted) - set(expected):
        differences[wid] = [f"not in the truth: {last[wid]['counts']}"]
    return RunResult(
        schedule=schedule,
        events=events,
        windows=len(expected),
        matches=matches,
        missing=len(set(expected) - set(emitted)),
        unexpected=len(set(emitted) - set(expected)),
        twice=sum(1 for n in emitted.values() if n > 1),
        differences=differences,
        outcomes=outcomes,
        expected_outcomes=truth.outcomes_by_topic,
        seconds=seconds,
        log_tail=log_tail,
    )


class _WindowReader:
    """Reads `salewatch.windows` from its start, as JSON records."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.records: list[dict[str, Any]] = []

    def _poll(self) -> int:
        fresh = [
            orjson.loads(record.value)
            for batch in self._consumer.poll(timeout_ms=500).values()
            for record in batch
        ]
        self.records.extend(fresh)
        return len(fresh)

    def read(self, expected: int, quiet_s: float, timeout_s: float) -> list[dict[str, Any]]:
        """Until `expected` distinct windows (then `_SETTLE_S` more), `quiet_s` without a
        new record, or `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last_new < quiet_s:
            if self._poll():
                last_new = time.monotonic()
            if len({window_id(record) for record in self.records}) >= expected:
                settle = time.monotonic() + _SETTLE_S
                while time.monotonic() < settle:
                    self._poll()
                break
        return self.records

    def close(self) -> None:
        self._consumer.close()


def metric_samples(exposition: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of `name` in a Prometheus exposition."""
    samples = []
    for match in re.finditer(rf"^{name}(?:\{{(.*?)\}})? (\S+)$", exposition, re.M):
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1) or ""))
        samples.append((labels, float(match.group(2))))
    return samples


def _outcomes(workers: list[Worker], topic_prefix: str) -> dict[str, dict[str, int]] | None:
    """salewatch_event_outcomes_total of the workers, by topic suffix; None without it."""
    samples = [
        sample
        for worker in workers
        for sample in metric_samples(worker.metrics(), _OUTCOMES_METRIC)
    ]
    if not samples:
        return None
    totals = {topic: dict.fromkeys(OUTCOMES, 0) for topic in TOPICS}
    for labels, value in samples:
        topic = labels["topic"].removeprefix(topic_prefix)
        totals.setdefault(topic, dict.fromkeys(OUTCOMES, 0))
        totals[topic][labels["outcome"]] = totals[topic].get(labels["outcome"], 0) + int(value)
    return totals


def _wait_processed(factory: WorkerFactory, events: float, timeout_s: float) -> None:
    """Until stage 2 of the running workers has processed `events` (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = 0.0
        for worker in factory.started:
            if worker.process.poll() is None:
                with_step = metric_samples(worker.metrics(), _PROCESSED_METRIC)
                done += sum(v for labels, v in with_step if labels.get("step") == "funnel")
        if done >= events:
            return
        time.sleep(0.05)


@dataclass
class RandomChooser:
    """A `Chooser` over random.Random (seeded: the same schedules again)."""

    rng: random.Random = field(default_factory=random.Random)

    def choice(self, options: Sequence[T]) -> T:
        return self.rng.choice(options)
