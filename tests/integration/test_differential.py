"""Differential: random arrival schedules of small simulated scenarios against real workers.

Each example draws a schedule (tests/support/differential.py: batch size, grouping,
linger, keys, a lagging topic, backfill or paced, workers before or after the data, one or
two, a SIGTERM restart mid-run) over a one-minute scenario with 10 s windows and 3 s grace,
order retries, late copies, duplicates, out-of-order and late events. Every final window
must equal the ground truth (counts, paid orders, GMV to the cent, UV within its sketch
bounds) and come out once; where the schedule replays nothing, the outcome counters must
equal the truth's too. `python -m benchmarks.differential` runs many more, with SIGKILL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from tests.support.differential import random_schedule, run_schedule
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

T = TypeVar("T")


class Draws:
    """A `Chooser` drawing from hypothesis."""

    def __init__(self, data: st.DataObject) -> None:
        self._data = data

    def choice(self, options: Sequence[T]) -> T:
        return self._data.draw(st.sampled_from(options))


@settings(
    max_examples=3,
    deadline=None,
    database=None,
    # the same schedules in every run, so CI is repeatable; `python -m
    # benchmarks.differential` draws new ones
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example is a real run
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_window_equals_the_truth_once_whatever_the_arrival(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    schedule = random_schedule(Draws(data))
    note(schedule.describe())
    result = run_schedule(stack, tmp_path_factory.mktemp("differential"), schedule, timeout_s=150)
    assert result.windows_exact, result.report()
    assert result.outcomes_match is not False, result.report()
