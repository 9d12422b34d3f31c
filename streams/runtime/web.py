"""The worker's HTTP endpoints: /metrics for Prometheus and /health for orchestrators."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from streams.runtime.metrics import Metrics

__all__ = ["WorkerStatus", "register"]


@dataclass
class WorkerStatus:
    """What /health reports; the parts of the worker set their own flags."""

    ingest_running: bool = False
    ingest_failing: bool = False  # stage 1's last sends failed; not committed since
    ingest_pid: int | None = None  # stage 1's process while it runs (its CPU and memory)

    @property
    def healthy(self) -> bool:
        return self.ingest_running and not self.ingest_failing


def register(app: faust.App, metrics: Metrics, status: WorkerStatus) -> None:
    @app.page("/metrics")
    async def prometheus_metrics(web: View, request: Request) -> Response:
        return web.bytes(metrics.exposition(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        body = {
            "status": "ok" if status.healthy else "unhealthy",
            "ingest": status.ingest_running,
            "ingest_failing": status.ingest_failing,
        }
        return web.json(body, status=200 if status.healthy else 503)
