"""The worker's HTTP endpoints: /metrics for Prometheus and /health for orchestrators.

/health answers 503, naming every failing check, when stage 1 is not running, when its
sends to Kafka fail, when it has not reported since it started (connecting, joining its
consumer group) or for INGEST_SILENT_S (stuck), when the broker
does not answer its probe, when a Faust agent (stages 2 and 3, inventory, alerts)
crashed, or while the worker's partitions are moving or its tables restoring from their
changelogs (`"status": "restoring"` with the records still to read, also
`salewatch_restore_remaining_records`). `salewatch_health_check{check}` shows the same
checks to Prometheus.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

import faust
from faust.tables.manager import TableManager
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from streams.runtime.metrics import Metrics

__all__ = ["INGEST_SILENT_S", "Restore", "WorkerStatus", "register"]

# stage 1 reports at least every second; this long without a word means it is stuck
INGEST_SILENT_S = 15.0
CHECK_EVERY_S = 1.0


@dataclass
class WorkerStatus:
    """What /health reports; the parts of the worker set their own fields."""

    ingest_running: bool = False
    ingest_failing: bool = False  # stage 1's last sends failed; not committed since
    kafka_reachable: bool = True  # stage 1's last probe of the broker was answered
    ingest_heard: float | None = None  # its last message; None: none since it started
    ingest_pid: int | None = None  # its process; None before the first start (no metrics)

    def checks(self, crashed_agents: list[str], restore: Restore) -> dict[str, bool]:
        return {
            "ingest_running": self.ingest_running,
            "ingest_delivering": not self.ingest_failing,
            "ingest_reporting": self.ingest_heard is not None
            and time.monotonic() - self.ingest_heard < INGEST_SILENT_S,
            "kafka_reachable": self.kafka_reachable,
            "agents_running": not crashed_agents,
            "tables_ready": not restore.restoring,
        }


@dataclass(frozen=True)
class Restore:
    """Where the worker's tables are: a rebalance moving partitions, or Faust's recovery
    reading the changelogs of the partitions it now owns (faust/tables/recovery.py)."""

    restoring: bool
    remaining_records: int  # changelog records of active partitions still to read
    partitions: int  # active partitions with records still to read

    @classmethod
    def of(cls, app: faust.App) -> Restore:
        recovery = cast(TableManager, app.tables).recovery
        remaining = [n for n in recovery.active_remaining().values() if n > 0]
        return cls(
            restoring=app.rebalancing or recovery.in_recovery,
            remaining_records=sum(remaining),
            partitions=len(remaining),
        )


def crashed_agents(app: faust.App) -> list[str]:
    return sorted(name for name, agent in app.agents.items() if agent.crashed)


def register(app: faust.App, metrics: Metrics, status: WorkerStatus) -> None:
    def evaluate() -> tuple[dict[str, bool], list[str], Restore]:
        crashed = crashed_agents(app)
        restore = Restore.of(app)
        checks = status.checks(crashed, restore)
        for check, passed in checks.items():
            metrics.health_check.labels(check).set(1 if passed else 0)
        metrics.restore_remaining.set(restore.remaining_records)
        return checks, crashed, restore

    @app.timer(CHECK_EVERY_S, name="health-checks")
    async def update_health_metric() -> None:
        evaluate()

    @app.page("/metrics")
    async def prometheus_metrics(web: View, request: Request) -> Response:
        return web.bytes(metrics.exposition(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        checks, crashed, restore = evaluate()
        failing = sorted(check for check, passed in checks.items() if not passed)
        body = {
            "status": health_status(failing),
            "failing": failing,
            "restoring": {
                "remaining_records": restore.remaining_records,
                "partitions": restore.partitions,
            },
            "ingest": status.ingest_running,
            "ingest_failing": status.ingest_failing,
            "kafka_reachable": status.kafka_reachable,
            "crashed_agents": crashed,
        }
        return web.json(body, status=503 if failing else 200)


def health_status(failing: list[str]) -> str:
    if not failing:
        return "ok"
    return "restoring" if failing == ["tables_ready"] else "unhealthy"
