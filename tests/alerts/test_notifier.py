"""The Alertmanager notifier against a real local HTTP server speaking Alertmanager's
`POST /api/v2/alerts`: retries with backoff, nothing lost while it is down, bad requests
dropped, the newest state of an alert wins, re-sends while firing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from alerts.detectors import Signal
from alerts.lifecycle import Alert, AlertBook
from alerts.notifier import AlertmanagerNotifier
from streams.runtime.metrics import Metrics
from tests.support.worker import free_port


class FakeAlertmanager:
    """Answers `fail` requests with `status`, then 200; records every accepted body."""

    def __init__(self, fail: int = 0, status: int = 503) -> None:
        self.fail = fail
        self.status = status
        self.attempts: list[float] = []
        self.accepted: list[list[dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts.append(time.monotonic())
        body = await request.json()
        if self.fail > 0:
            self.fail -= 1
            return web.Response(status=self.status, text="not now")
        self.accepted.append(body)
        return web.json_response({"status": "success"})

    @contextlib.asynccontextmanager
    async def serve(self, port: int) -> AsyncIterator[str]:
        app = web.Application()
        app.router.add_post("/api/v2/alerts", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()


def alerts(n: int, book: AlertBook | None = None) -> list[Alert]:
    book = book or AlertBook("http://g")
    out = []
    for i in range(n):
        signal = Signal(alertname="StockOut", labels={"store_id": "s1", "sku": f"k{i}"},
                        firing=True, event_ms=0, summary="out",
                        description="out of stock")  # fmt: skip
        out.extend(book.apply(signal, 0, int(time.time() * 1000)).published)
    return out


def counted(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "salewatch_alert_notifications_total", {"result": result}
    )
    return value or 0.0


@contextlib.asynccontextmanager
async def running(notifier: AlertmanagerNotifier) -> AsyncIterator[None]:
    task = asyncio.create_task(notifier.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def notifier(url: str, metrics: Metrics, **options: Any) -> AlertmanagerNotifier:
    options.setdefault("backoff_initial_s", 0.05)
    options.setdefault("backoff_max_s", 0.4)
    return AlertmanagerNotifier(url, metrics, **options)


async def test_retries_with_growing_backoff_until_accepted() -> None:
    metrics = Metrics()
    server = FakeAlertmanager(fail=4, status=503)
    async with server.serve(free_port()) as url:
        n = notifier(url, metrics)
        n.submit(alerts(3))
        async with running(n):
            await until(lambda: server.accepted)
    assert len(server.attempts) == 5
    gaps = [b - a for a, b in zip(server.attempts, server.attempts[1:], strict=False)]
    assert gaps[-1] > gaps[0] * 2  # exponential, with jitter
    assert [a["labels"]["sku"] for a in server.accepted[0]] == ["k0", "k1", "k2"]
    assert counted(metrics, "failed") == 12 and counted(metrics, "sent") == 3
    assert n.backlog == 0 and n.last_error is None


async def test_nothing_is_lost_while_alertmanager_is_down() -> None:
    metrics = Metrics()
    port = free_port()
    n = notifier(f"http://127.0.0.1:{port}", metrics, resend_s=60)
    async with running(n):
        n.submit(alerts(5))
        await until(lambda: counted(metrics, "failed") >= 10)  # refused, twice at least
        assert n.backlog == 5 and n.last_error and "Connect" in n.last_error
        server = FakeAlertmanager()
        async with server.serve(port):
            await until(lambda: server.accepted)
    (body,) = server.accepted
    assert len(body) == 5
    # firing alerts are sent with an endsAt in the future, computed when sent
    assert all(a["endsAt"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) for a in body)


async def test_a_bad_request_is_dropped_not_retried() -> None:
    metrics = Metrics()
    server = FakeAlertmanager(fail=1, status=400)
    async with server.serve(free_port()) as url:
        n = notifier(url, metrics)
        async with running(n):
            n.submit(alerts(2))
            await until(lambda: counted(metrics, "rejected") == 2)
            await asyncio.sleep(0.2)
    assert len(server.attempts) == 1 and n.backlog == 0


async def test_the_newest_state_of_an_alert_replaces_an_undelivered_one() -> None:
    metrics = Metrics()
    book = AlertBook("http://g")
    (firing,) = alerts(1, book)
    gone = Signal(
        alertname="StockOut", labels={"store_id": "s1", "sku": "k0"}, firing=False, event_ms=1
    )
    (resolved,) = book.apply(gone, 0, int(time.time() * 1000)).published
    server = FakeAlertmanager()
    async with server.serve(free_port()) as url:
        n = notifier(url, metrics)
        n.submit([firing])
        n.submit([resolved])
        async with running(n):
            await until(lambda: server.accepted)
    (body,) = server.accepted
    assert len(body) == 1
    assert body[0]["endsAt"] == resolved.record()["endsAt"]


async def test_firing_alerts_are_resent_every_interval() -> None:
    metrics = Metrics()
    server = FakeAlertmanager()
    clock = [1_000_000]
    async with server.serve(free_port()) as url:
        n = notifier(url, metrics, resend_s=60, clock=lambda: clock[0])
        firing = alerts(2)
        async with running(n):
            n.resend(firing, clock[0])  # never delivered: due at once (after a restart)
            await until(lambda: len(server.accepted) == 1)
            clock[0] += 30_000
            n.resend(firing, clock[0])
            await asyncio.sleep(0.1)
            assert len(server.accepted) == 1  # not due yet
            clock[0] += 30_000
            n.resend(firing, clock[0])
            await until(lambda: len(server.accepted) == 2)
    assert counted(metrics, "sent") == 4


@pytest.mark.parametrize("status", [429, 500])
async def test_throttling_and_server_errors_are_retried(status: int) -> None:
    metrics = Metrics()
    server = FakeAlertmanager(fail=1, status=status)
    async with server.serve(free_port()) as url:
        n = notifier(url, metrics)
        n.submit(alerts(1))
        async with running(n):
            await until(lambda: server.accepted)
    assert counted(metrics, "failed") == 1 and counted(metrics, "sent") == 1


async def test_resolutions_alertmanager_answered_are_told_and_only_those() -> None:
    """The stage keeps a resolution in its table until told here (alerts/stage.py)."""
    metrics = Metrics()
    book = AlertBook("http://g")
    firing = alerts(2, book)
    gone = Signal(
        alertname="StockOut", labels={"store_id": "s1", "sku": "k0"}, firing=False, event_ms=1
    )
    (resolved,) = book.apply(gone, 0, int(time.time() * 1000)).published
    told: list[list[Alert]] = []
    server = FakeAlertmanager(fail=2, status=503)
    async with server.serve(free_port()) as url:
        n = notifier(url, metrics)

        async def tell(delivered: list[Alert]) -> None:
            told.append(delivered)

        n.on_resolved_delivered = tell
        n.submit([firing[1], resolved])
        async with running(n):
            await until(lambda: server.accepted)
            assert counted(metrics, "failed") == 4  # two refused attempts told nothing
    assert told == [[resolved]]
