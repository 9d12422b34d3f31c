"""Crash and fault suite: a live sale produced at a steady pace while workers and their
stage-1 processes are killed (SIGKILL) at random moments, workers join and leave, the broker
or Alertmanager goes away; then every final window is judged against the ground truth
(equal, once), so is the stock of every store x SKU, and every alert: Alertmanager must
hold exactly the alerts the alerts topic last says are firing.

    python -m benchmarks.crash_suite [--faults 10] [--events 1000000] [--runs restart standby
        join-leave broker alertmanager] [--configs now static before] [--fault-every-s 30]
        [--broker-down-s 30] [--alertmanager-down-s 60] [--stall-s 6] [--stall-at-s S]
        [--baseline COMMIT]

Runs (each on fresh topics, the dev stack's broker):
- `restart`: one worker. A fault kills the worker (a new one starts at once on its data
  directory) or its stage-1 process (the worker starts another), at random.
- `standby`: two workers. A fault kills one of them, whose partitions the other takes over
  with its standby tables (a new worker joins once it serves), or a stage-1 process.
- `join-leave`: one worker; a second joins, then leaves (SIGTERM), and so on.
- `broker`: one worker; a fault stops the broker (SIGTERM, its data kept) for
  `--broker-down-s` and starts it again, while the sale is still being produced (the
  producer holds and retries its sends). It is the dev stack's own broker: anything else on
  this machine using it sees the outage too.
- `alertmanager`: one worker; a fault takes Alertmanager away for `--alertmanager-down-s`,
  at random either stopped (the dev stack's own: it forgets its alerts, the worker's
  re-sends bring them back) or cut off from the worker (a port in between refuses
  connections: it keeps its alerts, and one resolved meanwhile must not stay firing), and
  kills the worker (SIGKILL) at a random moment of the outage; a new one starts on its
  data directory.
- `stage-1`: one worker; a fault kills its stage-1 process (the worker starts another).
- `stall`: one worker; a fault holds the sale's producer for `--stall-s` (then it sends
  what it held at once), as a store's producer stalls, `--stall-at-s` into production (by
  default at the fault's random moment). Shorter than `idle_ms` (10 s), the
  inputs hold the windows open through it and every window stays exact; longer, every
  input is idle, the watermark follows the wall clock, and events the stall held that are
  on time in their own partition are counted late (docs/architecture.md, "Event time").
Every run restarts the dev stack's Alertmanager first (so what it holds at the end came
from this run) and sells out a few hot SKUs (some restocked before the end): its workers
send alerts through that port, re-sending firing ones every 10 s.
Takeover is the time from a fault to serving again (for `broker` and `alertmanager`: from
the end of the outage): every partition that received input
since the fault has a commit past where it stood at the fault, in both consumer groups
(stage 1's and the worker's), and every running worker's /health is 200. Production is
paced to last `--fault-every-s` per fault; faults left when it is done hit an idle pipeline
(then only /health tells). `--configs static`: a group instance id per worker (static
membership: a restarted worker comes back under its predecessor's); `before`: the settings
of before fast takeover (memory store, session timeout 60 s, no standby); `rocksdb`: the
defaults on the RocksDB store; `short-idle`: `idle_ms` 2 s (the broker run's producers
must then deliver their backlog within 2 s of the broker's return, and any run's producer
must never pause longer).
`--baseline COMMIT`: every run again with the workers of
that commit (the producer, faults and judge of this tree).
Prints one row per run. Needs the local stack.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition  # type: ignore[import-untyped]
from kafka.errors import KafkaError  # type: ignore[import-untyped]

from benchmarks.end_to_end import source_tree
from benchmarks.funnel_crash import SETTINGS, final_windows
from simulator import Incident, KeyMode, ScenarioConfig, generate, produce
from simulator.scenario import Scenario
from tests.support.alerts import AlertIdentity, Forwarder, alert_records, undelivered_alerts
from tests.support.inventory import TOPIC_KINDS, stock_differences, wait_consumed
from tests.support.kafka import committed_offsets
from tests.support.stack import Stack, ensure_stack, stop_service
from tests.support.windows import difference_report, window_outcome
from tests.support.worker import Worker, WorkerFactory, free_port

RUNS = ("restart", "standby", "join-leave", "broker", "alertmanager", "stall", "stage-1")
NOW: dict[str, object] = {}  # the defaults
BEFORE: dict[str, object] = {
    "store": "memory://",
    "session_timeout_ms": 60_000,
    "table_standby_replicas": 0,
}
STATIC_MEMBERSHIP = "static membership"  # not a worker setting: a group instance id each
CONFIGS = {
    "now": NOW,
    "static": {STATIC_MEMBERSHIP: True},
    "rocksdb": {"store": "rocksdb://"},
    "before": BEFORE,
    "short-idle": {"idle_ms": 2_000},
}
SERVING_TIMEOUT_S = 180.0
# Holds its sends through a broker outage and, by default, reconnects within a second of its
# return, as Kafka's Java clients do (kafka-python backs off up to 30 s by default, and an
# input whose backlog comes later than `idle_ms` after the broker answers again counts idle
# meanwhile: `--producer-reconnect-max-ms 30000` shows it).
OUTAGE_PATIENT_PRODUCER = {"max_block_ms": 300_000, "delivery_timeout_ms": 300_000}
RECONNECT_BACKOFF_MAX_MS = 1_000
ALERT_RESEND_S = 10.0  # firing alerts re-sent this often (60 s by default)
# how long Alertmanager may take to hold what the alerts topic says, at the end of a run
ALERTS_SETTLE_S = 4 * ALERT_RESEND_S
# hot SKUs sold out (a StockOut each), two restocked before the end of the sale (resolved);
# 2 extra impressions/s on each while it lasts (the simulator's default, 10, adds a third
# to a 30,000-event sale)
SELLOUTS = tuple(
    Incident("sellout", start_s, end_s, store=store, factor=2.0)
    for start_s, end_s, store in ((60, 240, 0), (150, 400, 1), (240, None, 2), (330, None, 3),
                                  (420, None, 0))
)  # fmt: skip


def scenario(events: int, seed: int = 11) -> Scenario:
    """About `events` events over 10 minutes of event time: 10 s windows, random keys,
    duplicates, out-of-order and late events (the funnel crash benchmark's mix), and the
    SELLOUTS."""
    return generate(
        ScenarioConfig(
            seed=seed, duration_s=600, base_rate=events / 617, window_ms=SETTINGS["window_ms"],
            grace_ms=SETTINGS["grace_ms"], key_mode=KeyMode.RANDOM, duplicate_rate=0.02,
            out_of_order_rate=0.1, late_rate=0.003, incidents=SELLOUTS,
        )
    )  # fmt: skip


GroupPartition = tuple[str, TopicPartition]


class Progress:
    """Where a run's two consumer groups stand, read from the broker."""

    def __init__(self, factory: WorkerFactory) -> None:
        bootstrap = factory.stack.kafka_bootstrap
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, allow_auto_create_topics=False)
        self._topics = {
            f"{factory.app_id}-ingest": [factory.input_topic(kind) for kind in TOPIC_KINDS],
            factory.app_id: [factory.output_topic("events")],
        }

    def close(self) -> None:
        self._admin.close()
        self._consumer.close()

    def committed(self) -> dict[GroupPartition, int]:
        return {
            (group, tp): offset
            for group in self._topics
            for tp, offset in committed_offsets(self._admin, group).items()
        }

    def stalled(self, at_fault: dict[GroupPartition, int]) -> list[GroupPartition]:
        """Partitions with input since `at_fault` that their group has not committed past."""
        now = self.committed()
        stalled = []
        for group, topics in self._topics.items():
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in self._consumer.partitions_for_topic(topic) or ()
            ]
            for tp, end in self._consumer.end_offsets(partitions).items():
                before = at_fault.get((group, tp), 0)
                if end > before and now.get((group, tp), 0) <= before:
                    stalled.append((group, tp))
        return stalled


@dataclass
class LiveRun:
    """Workers of one run, the faults done to them and how long each took to serve again."""

    factory: WorkerFactory
    settings: dict[str, object]
    progress: Progress
    rng: random.Random
    alertmanager: Forwarder  # the workers' way to Alertmanager
    workers: list[Worker] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    takeovers: list[float] = field(default_factory=list)
    broker_down_s: float = 30.0
    alertmanager_down_s: float = 60.0
    stall_s: float = 6.0
    stall_at_s: float | None = None  # into production (None: at the fault's random moment)
    production_began: float = 0.0  # monotonic
    # cleared while the sale's producer is held (a stall fault): it waits at its next batch
    producer_may_send: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.producer_may_send.set()

    def start_worker(self, data_of: Worker | None = None) -> Worker:
        """A new worker; on the data directory of a stopped one (`data_of`): a restart. With
        static membership a worker's group instance id is its data directory's name, so a
        restarted worker comes back under its predecessor's, on its web port."""
        if data_of is None:
            data_dir = self.factory.tmp / f"member-{len(self.factory.started)}"
        else:
            data_dir = data_of.data_dir
        settings = dict(self.settings)
        if settings.pop(STATIC_MEMBERSHIP, False):
            settings["group_instance_id"] = data_dir.name
            if data_of is not None:  # the group hands back its assignment, address included
                settings["web_port"] = data_of.port
        worker = self.factory.start(wait_healthy=False, data_dir=data_dir, **settings)
        self.workers.append(worker)
        return worker

    def serving(self, at_fault: dict[GroupPartition, int]) -> bool:
        try:
            if self.progress.stalled(at_fault):
                return False
        except KafkaError:  # the broker not answering yet (a broker fault): not serving yet
            return False
        return all(healthy(worker) for worker in self.workers)

    def why_not(self, at_fault: dict[GroupPartition, int]) -> str:
        """What `serving` found wanting: the stalled partitions, each worker's /health."""
        try:
            stalled = [f"{group} {tp.topic}[{tp.partition}]" for group, tp in
                       self.progress.stalled(at_fault)]  # fmt: skip
        except KafkaError as exc:
            stalled = [f"unknown ({exc})"]
        health = []
        for worker in self.workers:
            try:
                health.append(worker.get("/health")[1].decode())
            except OSError as exc:
                health.append(repr(exc))
        return f"stalled {stalled or 'none'}; health {health}"

    def fault(
        self, name: str, act: Callable[[], object], counted: bool = True, timed_after: bool = False
    ) -> None:
        """Do `act`, then wait until the run serves again; a counted fault's time is a
        takeover, from the start of `act` or, `timed_after`, from its end."""
        at_fault = self.progress.committed()
        started = time.monotonic()
        act()
        if timed_after:
            started = time.monotonic()
        while not self.serving(at_fault):
            if time.monotonic() - started > SERVING_TIMEOUT_S:
                raise AssertionError(
                    f"not serving {SERVING_TIMEOUT_S:g} s after {name}: {self.why_not(at_fault)}"
                )
            time.sleep(0.25)
        took = time.monotonic() - started
        print(f"  {name}: serving again after {took:.1f} s", file=sys.stderr, flush=True)
        if counted:
            self.faults.append(name)
            self.takeovers.append(took)

    def kill_a_worker(self, replace: Callable[[Worker], object]) -> None:
        victim = self.rng.choice(self.workers)
        victim.stop(signal.SIGKILL)
        self.workers.remove(victim)
        replace(victim)

    def kill_worker(self, replace: Callable[[Worker], object]) -> None:
        self.fault("kill worker", lambda: self.kill_a_worker(replace))

    def kill_stage_1(self) -> None:
        victim = self.rng.choice(self.workers)
        self.fault("kill stage 1", lambda: os.kill(victim.stage_1_pid(), signal.SIGKILL))


def healthy(worker: Worker) -> bool:
    try:
        return worker.get("/health")[0] == 200
    except OSError:
        return False


def restart_fault(run: LiveRun) -> None:
    if run.rng.random() < 0.5:
        run.kill_worker(lambda victim: run.start_worker(data_of=victim))
    else:
        run.kill_stage_1()


def standby_fault(run: LiveRun) -> None:
    if run.rng.random() < 0.5:
        run.kill_worker(lambda victim: None)  # the survivor takes over
        run.fault("replacement joins", run.start_worker, counted=False)
    else:
        run.kill_stage_1()


def join_leave_fault(run: LiveRun) -> None:
    if len(run.workers) == 1:
        run.fault("join", run.start_worker)
    else:
        leaving = run.workers[-1]

        def leave() -> None:
            run.workers.remove(leaving)
            leaving.stop()

        run.fault("leave", leave)


def stall_fault(run: LiveRun) -> None:
    if run.stall_at_s is not None:
        time.sleep(max(0.0, run.production_began + run.stall_at_s - time.monotonic()))

    def stall() -> None:
        run.producer_may_send.clear()
        time.sleep(run.stall_s)
        run.producer_may_send.set()  # it catches up: the held events come at once

    run.fault("producer stall", stall, timed_after=True)


def broker_fault(run: LiveRun) -> None:
    def outage() -> None:
        stop_service("kafka")
        time.sleep(run.broker_down_s)
        ensure_stack()  # starts the broker again and waits until it answers

    run.fault("broker restart", outage, timed_after=True)


def alertmanager_fault(run: LiveRun) -> None:
    stopped = run.rng.random() < 0.5  # or cut off
    kill_after_s = run.rng.uniform(0, run.alertmanager_down_s)

    def outage() -> None:
        if stopped:
            stop_service("alertmanager")
        else:
            run.alertmanager.down()
        time.sleep(kill_after_s)
        run.kill_a_worker(lambda victim: run.start_worker(data_of=victim))
        time.sleep(run.alertmanager_down_s - kill_after_s)
        if stopped:
            ensure_stack()  # starts Alertmanager again and waits until it answers
        else:
            run.alertmanager.up()

    name = "alertmanager stopped" if stopped else "alertmanager cut off"
    run.fault(f"{name} with a kill", outage, timed_after=True)


# per run: workers at the start, a fault, and worker settings over the suite's
FAULTS: dict[str, tuple[int, Callable[[LiveRun], None], dict[str, object]]] = {
    "restart": (1, restart_fault, {}),
    "standby": (2, standby_fault, {}),
    "join-leave": (1, join_leave_fault, {}),
    "broker": (1, broker_fault, {}),
    "stall": (1, stall_fault, {}),
    "stage-1": (1, LiveRun.kill_stage_1, {}),
    "alertmanager": (1, alertmanager_fault, {}),
}


def crash_run(
    stack: Stack, tmp: Path, sale: Scenario, kind: str, faults: int,
    settings: dict[str, object], seed: int = 1, fault_every_s: float = 30.0,
    check_stock: bool = True, broker_down_s: float = 30.0, alertmanager_down_s: float = 60.0,
    source: Path | None = None, reconnect_max_ms: int = RECONNECT_BACKOFF_MAX_MS,
    stall_s: float = 6.0, stall_at_s: float | None = None,
) -> dict[str, object]:  # fmt: skip
    """Produce `sale` paced over about `faults` x `fault_every_s` seconds, do a fault at a
    random moment of every such stretch, then judge the windows, the stock and the alerts.
    Workers run from `source` (another commit's files) or this tree."""
    factory = WorkerFactory(stack, tmp / f"{kind}-{seed}")
    if source is not None:
        factory.repo = source
    factory.tmp.mkdir(parents=True)
    starting, do_fault, run_defaults = FAULTS[kind]
    speed = sale.config.duration_s / (faults * fault_every_s)
    rng = random.Random(seed)
    produced: list[Exception] = []  # the producer's failure, if any
    stop_service("alertmanager")  # it forgets its alerts: what it holds at the end is ours
    ensure_stack()
    alertmanager = Forwarder(free_port(), stack.alertmanager_url)
    alertmanager.up()
    worker_settings = {**SETTINGS, "alertmanager_url": alertmanager.url,
                       "alert_resend_s": ALERT_RESEND_S, **run_defaults, **settings}  # fmt: skip
    progress = Progress(factory)
    run = LiveRun(factory, worker_settings, progress, rng, alertmanager,
                  broker_down_s=broker_down_s, alertmanager_down_s=alertmanager_down_s,
                  stall_s=stall_s, stall_at_s=stall_at_s)  # fmt: skip

    def produce_sale() -> None:
        try:  # a broker outage holds sends for its length: the producer waits, then retries
            produce(sale, stack.kafka_bootstrap, factory.topic_prefix, speed,
                    progress=lambda _sent, _total: run.producer_may_send.wait(),
                    producer_options={**OUTAGE_PATIENT_PRODUCER,
                                      "reconnect_backoff_max_ms": reconnect_max_ms})  # fmt: skip
        except Exception as exc:  # told after the join
            produced.append(exc)

    producing = threading.Thread(
        target=produce_sale,
        daemon=True,  # an interrupted run stops without producing to its end
    )
    try:
        for _ in range(starting):
            factory.wait_healthy(run.start_worker(), timeout=120)
        run.production_began = time.monotonic()
        producing.start()
        while len(run.faults) < faults:  # once production is done, on an idle pipeline
            time.sleep(rng.uniform(1.0, 8.0))  # a random moment of processing
            do_fault(run)
        producing.join()
        if produced:
            raise AssertionError(f"the sale was not produced: {produced[0]!r}")
        windows = final_windows(factory, len(sale.truth.windows))
        stock_wrong = run_stock_differences(run, sale) if check_stock else None
        if stock_wrong:
            print(f"  stock (truth, table): {list(stock_wrong.items())[:5]}", file=sys.stderr)
        stores = {store_id for store_id, _ in sale.truth.inventory}
        firing, undelivered, stale = settled_alerts(factory, stores)
    finally:
        progress.close()
        factory.stop_all()
        alertmanager.down()
    outcome = window_outcome(windows, sale.truth.windows)
    if outcome["different"]:
        print(difference_report(windows, sale.truth.windows), file=sys.stderr)
    return {
        "run": kind,
        "faults": ", ".join(
            f"{run.faults.count(name)} {name}" for name in dict.fromkeys(run.faults)
        ),
        **outcome,
        "stock keys wrong": "-"
        if stock_wrong is None
        else f"{len(stock_wrong)} of {len(sale.truth.inventory)}",
        "alerts firing": len(firing),
        "not in Alertmanager": len(undelivered),
        "stale in Alertmanager": len(stale),
        "takeover p50 s": statistics.median(run.takeovers) if run.takeovers else float("nan"),
        "takeover max s": max(run.takeovers) if run.takeovers else float("nan"),
    }


def run_stock_differences(run: LiveRun, sale: Scenario) -> dict[tuple[str, str], object]:
    wait_consumed(run.factory)
    for worker in run.workers:  # a worker restoring a partition has none of its keys yet
        run.factory.wait_healthy(worker, timeout=SERVING_TIMEOUT_S)
    return dict(stock_differences(run.workers[0], sale.truth.inventory))


def settled_alerts(
    factory: WorkerFactory, stores: set[str]
) -> tuple[set[AlertIdentity], set[AlertIdentity], set[AlertIdentity]]:
    """The alerts firing at the end (the alerts topic's last word on each), those Alertmanager
    lacks and those it holds that are not firing, once they agree or ALERTS_SETTLE_S is up
    (the worker re-sends firing alerts every ALERT_RESEND_S)."""
    deadline = time.monotonic() + ALERTS_SETTLE_S
    while True:
        records = alert_records(factory.stack.kafka_bootstrap, factory.output_topic("alerts"))
        firing, undelivered, stale = undelivered_alerts(
            factory.stack.alertmanager_url, records, stores
        )
        if not (undelivered or stale) or time.monotonic() > deadline:
            if undelivered or stale:
                print(f"  alerts not in Alertmanager: {list(undelivered)[:3]}, stale: "
                      f"{list(stale)[:3]}", file=sys.stderr)  # fmt: skip
            return firing, undelivered, stale
        time.sleep(1)


def cell(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faults", type=int, default=10, help="faults per run")
    parser.add_argument("--events", type=int, default=1_000_000, help="events per run")
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=["now"],
                        help="now: the defaults; static: static group membership "
                        "(SALEWATCH_GROUP_INSTANCE_ID); rocksdb: with the RocksDB store; "
                        "before: before fast takeover")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault-every-s", type=float, default=30.0,
                        help="production is paced to last this long per fault")  # fmt: skip
    parser.add_argument("--broker-down-s", type=float, default=30.0,
                        help="how long a broker fault keeps the broker stopped")  # fmt: skip
    parser.add_argument("--alertmanager-down-s", type=float, default=60.0,
                        help="how long an alertmanager fault keeps it away")  # fmt: skip
    parser.add_argument("--stall-s", type=float, default=6.0,
                        help="how long a stall fault holds the sale's producer")  # fmt: skip
    parser.add_argument(
        "--stall-at-s",
        type=float,
        help="seconds into production a stall begins (default: at random)",
    )
    parser.add_argument("--baseline", help="a commit: each run again with its workers")
    parser.add_argument("--producer-reconnect-max-ms", type=int,
                        default=RECONNECT_BACKOFF_MAX_MS,
                        help="the sale producer's longest reconnect backoff")  # fmt: skip
    args = parser.parse_args()
    stack = ensure_stack()
    sale = scenario(args.events)
    print(f"scenario: {len(sale):,} events, {len(sale.truth.windows)} windows, "
          f"{len(sale.truth.inventory):,} stock keys")  # fmt: skip
    configurations = [(name, CONFIGS[name]) for name in args.configs]
    header = True
    with tempfile.TemporaryDirectory() as tmp:
        sources: list[tuple[str, Path | None]] = [("", None)]
        if args.baseline:
            sources.append((f" at {args.baseline}", source_tree(args.baseline, Path(tmp))))
        for kind in args.runs:
            for (label, settings), (at, source) in itertools.product(configurations, sources):
                row = crash_run(stack, Path(tmp) / f"{label}{at}", sale, kind, args.faults,
                                settings, seed=args.seed, fault_every_s=args.fault_every_s,
                                broker_down_s=args.broker_down_s,
                                alertmanager_down_s=args.alertmanager_down_s, source=source,
                                stall_s=args.stall_s, stall_at_s=args.stall_at_s,
                                reconnect_max_ms=args.producer_reconnect_max_ms)  # fmt: skip
                row = {"settings": label + at, **row}
                if header:
                    print("| " + " | ".join(row) + " |")
                    print("|" + "---|" * len(row))
                    header = False
                print("| " + " | ".join(map(cell, row.values())) + " |", flush=True)


if __name__ == "__main__":
    main()
