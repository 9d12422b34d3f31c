"""/health and `salewatch_health_check` tell the truth: a broker that stops answering and a
stage-1 process that stops reporting each turn the worker unhealthy, naming the check, and
healthy again once they are back."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.stack import REPO, SecureKafka, Stack
from tests.support.worker import Worker, WorkerFactory

pytestmark = pytest.mark.integration


def health(worker: Worker) -> tuple[int, dict[str, object]]:
    status, body = worker.get("/health")
    return status, json.loads(body)


def wait_for(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return check()


def failing(worker: Worker) -> list[str]:
    status, body = health(worker)
    assert (status == 200) == (body["failing"] == [])
    return list(body["failing"])  # type: ignore[call-overload]


def check_metric(worker: Worker, check: str) -> float:
    line = f'salewatch_health_check{{check="{check}"}} '
    return next(float(x.split()[-1]) for x in worker.metrics().splitlines() if x.startswith(line))


def test_a_stage_1_process_that_stops_reporting_makes_the_worker_unhealthy(
    workers: WorkerFactory,
) -> None:
    worker = workers.start()
    stage_1 = worker.stage_1_pid()
    os.kill(stage_1, signal.SIGSTOP)  # alive but stuck: not restarted, silent
    try:
        assert wait_for(lambda: failing(worker) == ["ingest_reporting"], timeout_s=40)
        assert check_metric(worker, "ingest_reporting") == 0
        assert check_metric(worker, "kafka_reachable") == 1
    finally:
        os.kill(stage_1, signal.SIGCONT)
    assert wait_for(lambda: failing(worker) == [], timeout_s=30)


def secure_broker_pid() -> int:
    return int((REPO / ".stack" / "run" / "kafka-secure.pid").read_text())


def test_a_broker_that_stops_answering_makes_the_worker_unhealthy(
    stack: Stack, secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    """The stack's second broker is paused (SIGSTOP), not the shared one."""
    secure_stack = Stack(
        kafka_bootstrap=secure_kafka.bootstrap,
        prometheus_url=stack.prometheus_url,
        alertmanager_url=stack.alertmanager_url,
        targets_dir=stack.targets_dir,
    )
    factory = WorkerFactory(
        secure_stack, tmp_path, kafka_options=secure_kafka.security.client_options()
    )
    kafka_settings = {f"kafka_{name}": value for name, value in secure_kafka.settings.items()}
    try:
        worker = factory.start(**kafka_settings)
        broker = secure_broker_pid()
        os.kill(broker, signal.SIGSTOP)
        try:
            assert wait_for(lambda: "kafka_reachable" in failing(worker), timeout_s=40)
            assert check_metric(worker, "kafka_reachable") == 0
        finally:
            os.kill(broker, signal.SIGCONT)
        assert wait_for(lambda: failing(worker) == [], timeout_s=90), health(worker)
    finally:
        factory.stop_all()
