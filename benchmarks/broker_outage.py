"""A broker outage as a worker sees it: what `/health` says and how many log lines the worker
writes while its broker is down, for this tree and a baseline commit, in the same run.

    python -m benchmarks.broker_outage [--outage-s 30] [--baseline 48bc05f]

Uses the dev stack's second broker (`devstack.py up-secure`, SASL_SSL), never the shared one:
each run starts a worker on it, stops the broker (SIGTERM), asks `/health` every second for
`--outage-s`, counts the worker's log lines (stage 1 included) written meanwhile, then starts
the broker again and measures how long until `/health` is 200 again. Prints one row per run.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.end_to_end import source_tree
from tests.support.stack import REPO, Stack, ensure_secure_kafka, ensure_stack
from tests.support.worker import Worker, WorkerFactory

SECURE_PID = REPO / ".stack" / "run" / "kafka-secure.pid"


def log_lines(worker: Worker) -> int:
    return worker.log().count("\n")


def outage(worker: Worker, seconds: float) -> tuple[float, int, float]:
    """(share of /health answers that were 503, log lines per second, s to healthy again)."""
    before = log_lines(worker)
    os.kill(int(SECURE_PID.read_text()), signal.SIGTERM)
    answers = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        answers.append(worker.get("/health")[0])
        time.sleep(1)
    lines = (log_lines(worker) - before) / (time.monotonic() - started)
    restarted = time.monotonic()
    subprocess.run(
        [sys.executable, str(REPO / "stack" / "devstack.py"), "up-secure"],
        check=True, capture_output=True,
    )  # fmt: skip
    while worker.get("/health")[0] != 200 and time.monotonic() - restarted < 180:
        time.sleep(0.5)
    return answers.count(503) / len(answers), round(lines), time.monotonic() - restarted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outage-s", type=float, default=30)
    parser.add_argument("--baseline", default="48bc05f", help="git commit of the baseline")
    args = parser.parse_args()
    stack, secure = ensure_stack(), ensure_secure_kafka()
    on_secure = Stack(
        secure.bootstrap, stack.prometheus_url, stack.alertmanager_url, stack.targets_dir
    )
    settings = {f"kafka_{name}": value for name, value in secure.settings.items()}
    print(f"| code | /health 503 during a {args.outage_s:g} s outage | log lines/s | "
          "broker back to /health 200 |")  # fmt: skip
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        baseline = source_tree(args.baseline, Path(tmp))
        for name, source in (("this tree", REPO), (args.baseline, baseline)):
            run_dir = Path(tmp) / ("tree" if source == REPO else "base")
            run_dir.mkdir()
            workers = WorkerFactory(
                on_secure, run_dir, kafka_options=secure.security.client_options()
            )
            workers.repo = source
            try:
                share, lines, back_s = outage(workers.start(**settings), args.outage_s)
            finally:
                workers.stop_all()
            print(f"| {name} | {share:.0%} | {lines:,} | {back_s:.1f} s |")


if __name__ == "__main__":
    main()
