"""HTTP ingest under big bodies: how long 16 concurrent POSTs of 5,000 events each take, and
how long `/health` takes to answer meanwhile, for this tree and for a baseline commit.

    python -m benchmarks.http_ingest_load [--runs 3] [--baseline da6c562^]

The baseline (default: the commit before validation moved off the event loop) runs from
that commit's files unpacked in a temporary directory, in the same run, alternating with
this tree. Each run starts a fresh worker, sends one warm-up body, then the 16 bodies at
once from 16 threads while a 17th thread asks `/health` every 20 ms. Prints min / median /
max over the runs of: the slowest of the 16 requests, and the median and largest `/health`
latency during the burst. Needs the local stack; the machine is shared: expect spread.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from benchmarks.end_to_end import source_tree
from tests.support.events import make_event
from tests.support.stack import REPO, ensure_stack
from tests.support.worker import Worker, WorkerFactory

TOKEN = "benchmark-token-0123456789"
BODIES, EVENTS_PER_BODY = 16, 5_000


def body() -> bytes:
    events = [make_event("click", user_id=f"u{i}") for i in range(EVENTS_PER_BODY)]
    return orjson.dumps(events)


def post(worker: Worker, payload: bytes) -> float:
    request = urllib.request.Request(
        worker.url + "/ingest/clicks",
        data=payload,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        method="POST",
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 202, response.status
    return time.perf_counter() - started


def burst(worker: Worker) -> tuple[float, float, float]:
    """(slowest request, median /health, largest /health), seconds."""
    payloads = [body() for _ in range(BODIES)]
    post(worker, body())  # warm-up
    done = threading.Event()
    health: list[float] = []

    def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            with urllib.request.urlopen(worker.url + "/health", timeout=60) as response:
                response.read()
            health.append(time.perf_counter() - started)
            time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    with ThreadPoolExecutor(BODIES) as pool:
        requests = list(pool.map(lambda payload: post(worker, payload), payloads))
    done.set()
    prober.join()
    return max(requests), statistics.median(health), max(health)


def spread(values: list[float]) -> str:
    return " / ".join(
        f"{v * 1000:,.0f}" for v in (min(values), statistics.median(values), max(values))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", default="da6c562^", help="git commit of the baseline")
    args = parser.parse_args()
    stack = ensure_stack()
    results: dict[str, list[tuple[float, float, float]]] = {"this tree": [], args.baseline: []}
    with tempfile.TemporaryDirectory() as tmp:
        baseline = source_tree(args.baseline, Path(tmp))
        for run in range(args.runs):
            for name, source in (("this tree", REPO), (args.baseline, baseline)):
                run_dir = Path(tmp) / f"{run}-{'tree' if source == REPO else 'baseline'}"
                run_dir.mkdir()
                workers = WorkerFactory(stack, run_dir)
                workers.repo = source
                try:
                    results[name].append(burst(workers.start(ingest_token=TOKEN)))
                finally:
                    workers.stop_all()
    print(f"{BODIES} concurrent bodies of {EVENTS_PER_BODY:,} events, {args.runs} runs, "
          "min / median / max in ms")  # fmt: skip
    print("| code | slowest request | /health median | /health max |")
    print("|---|---:|---:|---:|")
    for name, rows in results.items():
        slowest, median, largest = zip(*rows, strict=True)
        print(f"| {name} | {spread(list(slowest))} | {spread(list(median))} | "
              f"{spread(list(largest))} |")  # fmt: skip


if __name__ == "__main__":
    main()
