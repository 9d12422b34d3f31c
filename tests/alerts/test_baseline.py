"""Baselines: pooled rates, robust levels, a bounded history."""

from __future__ import annotations

import pytest

from alerts.baseline import Baseline


def test_pooled_rate_weighs_busy_windows_more() -> None:
    baseline = Baseline()
    baseline.add(40, 100, size=10)
    baseline.add(1, 10, size=10)
    assert baseline.rate() == pytest.approx((41 + 0.5) / (110 + 1))
    assert baseline.windows == 2 and baseline.volume == 110


def test_no_failures_is_not_a_rate_of_zero() -> None:
    baseline = Baseline()
    baseline.add(0, 200, size=10)
    rate = baseline.rate()
    assert rate is not None and 0 < rate < 0.01


def test_history_keeps_the_last_windows() -> None:
    baseline = Baseline()
    for i in range(10):
        baseline.add(i, 1, size=4)
    assert baseline.samples == [(6, 1), (7, 1), (8, 1), (9, 1)]


def test_median_level_ignores_a_short_surge() -> None:
    baseline = Baseline()
    for level in (100, 98, 2_000, 2_100, 103, 97, 101):
        baseline.add(level, 1, size=30)
    assert baseline.median_level() == 101
    assert Baseline().median_level() is None and Baseline().rate() is None


def test_round_trip() -> None:
    baseline = Baseline()
    baseline.add(3, 7, size=5)
    assert Baseline.from_json(baseline.to_json()) == baseline
