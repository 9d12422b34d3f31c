"""Where each microsecond per event goes: py-spy over one worker reading a sale.

    python -m benchmarks.profile_pipeline [--events 300000] [--inputs batched|single]
        [--paced-rate 14000]

Preloads the inputs as benchmarks/end_to_end.py does, starts one worker and samples its
two processes (stage 1; the worker with stages 2 and 3) with py-spy (`--nonblocking`,
100 Hz) from its start until the sale's last final window is out. With `--paced-rate`
the sale is produced live at that rate instead, into a worker that already serves, and
sampled from the first send (a live sale comes in smaller batches than a backlog: the
per-batch costs weigh more per event). Prints per process the
CPU microseconds per event (from /proc, over the same span) and how they split: by area
(our packages, Faust, aiokafka, pydantic, ...) and the functions with the most samples of
their own. The text summary goes to docs/profile.md by hand.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.end_to_end import (
    DURATION_S,
    arrival_of,
    last_window_timestamp,
    preload,
    scenario_of,
    send_closers,
)
from benchmarks.process_usage import children, cpu_seconds
from simulator import send
from tests.support.kafka import delete_topics
from tests.support.stack import REPO, ensure_stack
from tests.support.worker import WorkerFactory

RATE_HZ = 100
TOP = 18
# first match wins: a frame's file path -> its area
AREAS = (
    ("streams/contract/", "streams.contract (decode, validate, route)"),
    ("streams/ingest/", "streams.ingest (stage 1)"),
    ("streams/funnel/", "streams.funnel (stage 2)"),
    ("streams/merge/", "streams.merge (stage 3)"),
    ("streams/inventory/", "streams.inventory"),
    ("streams/", "streams (other)"),
    ("alerts/", "alerts"),
    ("datasketches", "datasketches"),
    ("pydantic", "pydantic"),
    ("faust/", "faust"),
    ("mode/", "mode (faust's service runtime)"),
    ("aiokafka/", "aiokafka"),
    ("prometheus_client", "prometheus_client"),
    ("asyncio/", "asyncio"),
)


def area_of(frame: str) -> str:
    return next((name for marker, name in AREAS if marker in frame), "other")


def summarise(raw: Path, cpu_s: float, events: int) -> str:
    """py-spy's raw (collapsed) stacks: one line per stack, leaf last, then a count."""
    own: Counter[str] = Counter()
    by_area: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaf = frames[-1]
        own[leaf] += count
        # the innermost frame of ours or a known library names the area of the sample
        area = next((a for a in map(area_of, reversed(frames)) if a != "other"), "other")
        by_area[area] += count
    us_per_event = cpu_s / events * 1e6
    lines = [f"CPU {cpu_s:.1f} s for {events:,} events: {us_per_event:.1f} us per event; "
             f"{total} samples", "", "| area (innermost known frame) | share | us/event |",
             "|---|---:|---:|"]  # fmt: skip
    for area, count in by_area.most_common():
        lines.append(f"| {area} | {count / total:.1%} | {us_per_event * count / total:.1f} |")
    lines += ["", "| function (own samples) | share | us/event |", "|---|---:|---:|"]
    for leaf, count in own.most_common(TOP):
        name = leaf.replace(f"{REPO}/", "").replace("|", "/")  # paths inside the repository
        lines.append(f"| {name} | {count / total:.1%} | {us_per_event * count / total:.1f} |")
    return "\n".join(lines)


def spy(py_spy: Path, pid: int, out: Path) -> subprocess.Popen[bytes]:
    options = ["--rate", str(RATE_HZ), "--nonblocking", "--nolineno", "--format", "raw"]
    return subprocess.Popen(
        [str(py_spy), "record", "--pid", str(pid), *options, "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--inputs", choices=("batched", "single"), default="batched")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--paced-rate", type=float, default=0, help="live, events/s; 0: preloaded")
    args = parser.parse_args()
    py_spy = Path(sys.executable).with_name("py-spy")
    stack = ensure_stack()
    scenario = scenario_of(args.events, seed=3)
    paced = args.paced_rate > 0
    preloaded = None if paced else preload(stack, scenario, args.inputs, args.batch, naive=False)
    try:
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            factory = WorkerFactory(stack, tmp / "w")
            factory.tmp.mkdir(parents=True)
            prefix = preloaded.prefix if preloaded else factory.topic_prefix
            try:
                worker = factory.start(False, topic_prefix=prefix)
                pids: dict[str, int] = {"worker": worker.process.pid}
                deadline = time.monotonic() + 30
                while not children(worker.process.pid, "spawn_main"):
                    if time.monotonic() > deadline:
                        raise TimeoutError("stage 1 did not start")
                    time.sleep(0.01)
                pids["stage 1"] = children(worker.process.pid, "spawn_main")[0]
                if paced:  # the sale only, not the worker's start
                    factory.wait_healthy(worker)
                cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                spies = {name: spy(py_spy, pid, tmp / f"{pid}.txt") for name, pid in pids.items()}
                if paced:
                    speed = DURATION_S * args.paced_rate / len(scenario)
                    messages = arrival_of(args.inputs, args.batch, speed).messages(scenario)
                    send(messages, stack.kafka_bootstrap, prefix, speed)
                    send_closers(stack.kafka_bootstrap, prefix, scenario)
                else:
                    factory.wait_healthy(worker)
                last_window_timestamp(stack.kafka_bootstrap, factory.output_topic("windows"),
                                      frozenset(scenario.truth.windows), 600)  # fmt: skip
                cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
                for recorder in spies.values():
                    recorder.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                    recorder.wait(60)
            finally:
                factory.stop_all()
            how = f"paced at {args.paced_rate:,.0f} events/s" if paced else "preloaded"
            for name, pid in pids.items():
                print(f"\n### {name} ({args.inputs} input, {how})\n")
                print(summarise(tmp / f"{pid}.txt", cpu[name], len(scenario)))
    finally:
        if preloaded:
            delete_topics(stack.kafka_bootstrap, [preloaded.prefix])


if __name__ == "__main__":
    main()
