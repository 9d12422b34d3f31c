"""The worker's side of stage 1: start its process, serve it, restart it if it dies.

Stage 1 runs in a process of its own (streams/ingest/process.py) so that validation and
routing get a core beside stages 2 and 3. The worker owns the metrics, so it applies what
the process counted. /health is unhealthy while the process is not running, and from a send
Kafka refused until stage 1 commits again (a new process too: it reads the same input again).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any

import faust

from streams.ingest import process as ingest_process
from streams.ingest.ingestor import IngestCounts
from streams.runtime.metrics import Metrics
from streams.runtime.settings import Settings
from streams.runtime.topics import Topics
from streams.runtime.web import WorkerStatus

__all__ = ["register"]

log = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 10.0


class IngestServer:
    """Answers one stage-1 process on the worker's event loop."""

    def __init__(self, metrics: Metrics, status: WorkerStatus) -> None:
        self._metrics = metrics
        self._status = status

    def handle(self, connection: Connection) -> None:
        """Read every message waiting on the pipe (called when it is readable)."""
        try:
            while connection.poll():
                kind, payload = connection.recv()
                self._dispatch(kind, payload)
        except (EOFError, OSError):
            pass  # the process ended; the supervisor notices and restarts it

    def _dispatch(self, kind: str, payload: Any) -> None:
        self._status.ingest_heard = time.monotonic()
        if kind == "counts":
            counts: IngestCounts = payload
            counts.apply(self._metrics)
        elif kind == "lag":
            for topic, lag in payload.items():
                self._metrics.consumer_lag.labels(topic).set(lag)
        elif kind == "failed":
            for topic, n in payload.items():
                self._metrics.produce_errors.labels(topic).inc(n)
            self._status.ingest_failing = True
        elif kind == "committed":
            self._status.ingest_failing = False
        elif kind == "kafka":
            if payload != self._status.kafka_reachable:
                log.warning("ingest: Kafka %s", "answers again" if payload else "does not answer")
            self._status.kafka_reachable = payload
        else:
            raise ValueError(f"unknown message from the ingest process: {kind!r}")


async def supervise(
    settings: Settings, server: IngestServer, status: WorkerStatus, log_level: int
) -> None:
    """Run the stage-1 process until cancelled; restart it whenever it ends."""
    context = multiprocessing.get_context("spawn")  # fork is unsafe with threads running
    loop = asyncio.get_running_loop()
    while True:
        ours, theirs = context.Pipe()
        process = context.Process(
            target=ingest_process.main,
            args=(settings, theirs, log_level),
            name="salewatch-ingest",
            daemon=True,
        )
        process.start()
        status.ingest_pid = process.pid
        theirs.close()
        loop.add_reader(ours.fileno(), server.handle, ours)
        status.ingest_running = True
        status.ingest_heard = None  # healthy once it reports
        try:
            while process.is_alive():
                await asyncio.sleep(0.2)
            log.error("ingest process exited with %s; restarting", process.exitcode)
        finally:
            status.ingest_running = False
            status.ingest_pid = None
            loop.remove_reader(ours.fileno())
            ours.close()  # a process still running sees the pipe closed and stops
            await _stopped(process)
        await asyncio.sleep(RESTART_DELAY_S)


async def _stopped(process: multiprocessing.process.BaseProcess) -> None:
    if process.is_alive():
        process.terminate()
    for _ in range(int(STOP_TIMEOUT_S / 0.1)):
        if not process.is_alive():
            break
        await asyncio.sleep(0.1)
    else:
        process.kill()
    process.join()


def register(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    metrics: Metrics,
    status: WorkerStatus,
) -> None:
    server = IngestServer(metrics, status)
    metrics.watch_process("salewatch_ingest", lambda: status.ingest_pid)
    for name in ("events", "deadletter"):  # at 0 from the start: increase() sees the first
        metrics.produce_errors.labels(settings.output_topic(name))

    @app.task
    async def ingest() -> None:
        await topics.create_outputs()  # before the process produces to them
        await supervise(settings, server, status, logging.getLogger().getEffectiveLevel())
