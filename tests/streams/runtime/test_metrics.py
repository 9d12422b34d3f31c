"""/metrics of a worker whose stage-1 process has not started yet (or is being restarted)."""

from __future__ import annotations

import os

from streams.runtime.metrics import Metrics
from streams.runtime.web import WorkerStatus


def test_exposition_without_a_stage_1_process_has_no_ingest_process_metrics() -> None:
    metrics, status = Metrics(), WorkerStatus()
    metrics.watch_process("salewatch_ingest", lambda: status.ingest_pid)
    assert b"salewatch_ingest_process_" not in metrics.exposition()


def test_exposition_with_a_stage_1_process_has_its_metrics() -> None:
    metrics, status = Metrics(), WorkerStatus()
    metrics.watch_process("salewatch_ingest", lambda: status.ingest_pid)
    status.ingest_pid = os.getpid()  # any running process will do
    assert b"salewatch_ingest_process_resident_memory_bytes" in metrics.exposition()
