"""Wait until a run's workers consumed everything, and read their stock tables through the
HTTP API (which redirects to the worker that owns a key)."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from tests.support.kafka import behind, end_offsets
from tests.support.worker import Worker, WorkerFactory, http_get

TOPIC_KINDS = ("clicks", "carts", "orders", "aftersales", "inventory")


# --- waiting until everything is consumed ------------------------------------------


def wait_consumed(workers: WorkerFactory, timeout_s: float = 300) -> None:
    """Until stage 1 read every input message, stage 2 every routed message up to then
    (stage 1 keeps sending watermark reports, so not to the end), and the inventory agent
    every stock message, twice in a row (one commit interval apart)."""
    bootstrap = workers.stack.kafka_bootstrap
    app_id = workers.app_id
    deadline = time.monotonic() + timeout_s

    def until(what: str, done: Callable[[], bool]) -> None:
        while not done():
            assert time.monotonic() < deadline, f"{what} not consumed after {timeout_s}s"
            time.sleep(1.5)

    inputs = [workers.input_topic(kind) for kind in TOPIC_KINDS]
    until(
        "input", lambda: behind(bootstrap, f"{app_id}-ingest", end_offsets(bootstrap, inputs)) == 0
    )
    routed = end_offsets(bootstrap, [workers.output_topic("events")])
    until("routed events", lambda: behind(bootstrap, app_id, routed) == 0)
    stock_topic = [workers.output_topic("stock")]
    quiet = 0
    while quiet < 2:
        assert time.monotonic() < deadline, f"stock not consumed after {timeout_s}s"
        time.sleep(1.5)
        caught_up = behind(bootstrap, app_id, end_offsets(bootstrap, stock_topic)) == 0
        quiet = quiet + 1 if caught_up else 0


# --- comparing through the API -----------------------------------------------------


def get(url: str, tries: int = 5) -> tuple[int, bytes]:
    """GET that rides out a connection reset by a worker busy on a loaded machine."""
    for attempt in range(tries):
        try:
            return http_get(url, timeout=10)
        except OSError:
            if attempt == tries - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def stock(worker: Worker, path: str) -> dict[str, object]:
    status, body = get(worker.url + path)  # follows the 307 to the owner
    assert status == 200, (path, status, body)
    return orjson.loads(body)  # type: ignore[no-any-return]


def stock_differences(
    worker: Worker, truth: dict[tuple[str, str], int]
) -> dict[tuple[str, str], tuple[int, object]]:
    """The store x SKU keys whose available stock is not the truth's: (truth, table), the
    table's None where it has no such key."""
    wrong: dict[tuple[str, str], tuple[int, object]] = {}
    for (store_id, sku), expected in sorted(truth.items()):
        status, body = settled_get(f"{worker.url}/api/stock/{store_id}/{sku}")
        assert status in (200, 404), (store_id, sku, status, body)
        available = orjson.loads(body)["available"] if status == 200 else None
        if available != expected:
            wrong[store_id, sku] = (expected, available)
    return wrong


def settled_get(url: str, timeout_s: float = 60.0) -> tuple[int, bytes]:
    """GET (following a 307 to the owner) that waits out a rebalance: a partition nobody
    owns yet (404) or a worker restoring its tables (503)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = get(url)
        unsettled = status == 503 or (status == 404 and b"not assigned" in body)
        if not unsettled or time.monotonic() > deadline:
            return status, body
        time.sleep(1)
