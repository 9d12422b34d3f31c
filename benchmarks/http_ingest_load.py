"""HTTP ingest under big bodies: how long 16 concurrent POSTs of 5,000 events each take, and
how long `/health` takes to answer meanwhile, for this tree and for a baseline commit.

    python -m benchmarks.http_ingest_load [--runs 3] [--baseline da6c562^]

The baseline (default: the commit before validation moved off the event loop) runs from
that commit's files unpacked in a temporary directory, in the same run, alternating with
this tree. Each run starts a fresh worker, sends one warm-up body, then the 16 bodies at
once from 16 threads while a 17th thread asks `/health` every 20 ms. Prints min / median /
max over the runs of: the slowest of the 16 requests, and the median and largest `/health`
latency during the burst; then how long 200 clients that send a tenth of their body and
stop stay connected (SALEWATCH_INGEST_READ_TIMEOUT_S, 10 s by default; given up after
SLOW_WAIT_S). Needs the local stack; the machine is shared: expect spread.
"""

from __future__ import annotations

import argparse
import socket
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
SLOW_CLIENTS, SLOW_WAIT_S = 200, 30.0


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


def slow_clients(worker: Worker) -> float:
    """Seconds until the last of SLOW_CLIENTS stalled uploads was closed by the worker."""
    head = (
        f"POST /ingest/clicks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n"
    ).encode()
    sockets = [socket.create_connection(("127.0.0.1", worker.port)) for _ in range(SLOW_CLIENTS)]
    started = time.monotonic()
    for sock in sockets:
        sock.sendall(head + b"[" + b" " * 999)
        sock.settimeout(0.05)
    open_ones = set(sockets)
    while open_ones and time.monotonic() - started < SLOW_WAIT_S:
        for sock in list(open_ones):
            try:
                if not sock.recv(65536):  # closed by the worker
                    open_ones.discard(sock)
            except TimeoutError:
                pass
    for sock in sockets:
        sock.close()
    return time.monotonic() - started if not open_ones else float("inf")


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
    stalled: dict[str, list[float]] = {name: [] for name in results}
    with tempfile.TemporaryDirectory() as tmp:
        baseline = source_tree(args.baseline, Path(tmp))
        for run in range(args.runs):
            for name, source in (("this tree", REPO), (args.baseline, baseline)):
                run_dir = Path(tmp) / f"{run}-{'tree' if source == REPO else 'baseline'}"
                run_dir.mkdir()
                workers = WorkerFactory(stack, run_dir)
                workers.repo = source
                try:
                    worker = workers.start(ingest_token=TOKEN)
                    results[name].append(burst(worker))
                    stalled[name].append(slow_clients(worker))
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
    print(
        f"\n{SLOW_CLIENTS} stalled uploads closed after (s; inf: still open at {SLOW_WAIT_S:g} s)"
    )
    for name, seconds in stalled.items():
        print(f"| {name} | {' / '.join(f'{s:.1f}' for s in sorted(seconds))} |")


if __name__ == "__main__":
    main()
