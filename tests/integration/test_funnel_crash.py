"""DESIGN.md anchor "worker kill -9, restart: totals equal ground truth exactly", for the
funnel: a worker killed with SIGKILL in the middle of the run, a new one taking over; every
final window equals the ground truth and is emitted once (benchmarks/funnel_crash.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.funnel_crash import crash_run, scenario
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def test_windows_are_exact_and_once_after_a_kill_9_mid_run(stack: Stack, tmp_path: Path) -> None:
    run = scenario()
    windows = len(run.truth.windows)
    outcome = crash_run(stack, tmp_path, run, kill_at=0.6)
    assert outcome == {
        "expected": windows,
        "equal": windows,
        "different": 0,
        "missing": 0,
        "unexpected": 0,
        "emitted twice": 0,
    }
