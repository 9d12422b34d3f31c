"""docs/design.md target "worker kill -9, restart", for the funnel: a worker killed with SIGKILL
in the middle of the run, a new one taking over. Every window still comes out, once, equal
to the ground truth, and only windows the ground truth has (docs/architecture.md, "After a
crash"; before stage 2 kept its state in one table, values differed after one kill in six
under a full test run's load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.funnel_crash import crash_run, scenario
from tests.support.stack import Stack
from tests.support.windows import difference_report, window_outcome

pytestmark = pytest.mark.integration


def test_every_window_comes_out_once_and_exact_after_a_kill_9_mid_run(
    stack: Stack, tmp_path: Path
) -> None:
    run = scenario()
    windows = crash_run(stack, tmp_path, run, kill_at=0.6)
    outcome = window_outcome(windows, run.truth.windows)
    assert outcome["expected"] == len(run.truth.windows)
    # before the fixes: 256 windows never emitted, 176 emitted twice
    assert (outcome["missing"], outcome["unexpected"], outcome["emitted twice"]) == (0, 0, 0)
    assert outcome["different"] == 0, difference_report(windows, run.truth.windows)
