"""The worker's HTTP endpoints: /metrics for Prometheus and /health for orchestrators."""

from __future__ import annotations

from dataclasses import dataclass, field

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from streams.metrics import Metrics

__all__ = ["WorkerStatus", "register"]


@dataclass
class WorkerStatus:
    """What /health reports; the parts of the worker set their own flags."""

    ingest_processes: int = 1  # stage-1 processes the worker runs
    ingest_running: set[int] = field(default_factory=set)  # which of them are up

    @property
    def healthy(self) -> bool:
        return len(self.ingest_running) == self.ingest_processes


def register(app: faust.App, metrics: Metrics, status: WorkerStatus) -> None:
    @app.page("/metrics")
    async def prometheus_metrics(web: View, request: Request) -> Response:
        return web.bytes(metrics.exposition(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        body = {
            "status": "ok" if status.healthy else "unhealthy",
            "ingest_processes": f"{len(status.ingest_running)}/{status.ingest_processes}",
        }
        return web.json(body, status=200 if status.healthy else 503)
