"""Exact one-sided tails against brute-force sums, and the per-window alpha."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.significance import binom_cdf, binom_sf, per_test_alpha, poisson_cdf


def brute_binom_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(min(k, n) + 1))


def brute_poisson_cdf(k: int, lam: float) -> float:
    return sum(math.exp(-lam) * lam**i / math.factorial(i) for i in range(k + 1))


@given(st.integers(0, 60), st.integers(1, 60), st.floats(0.01, 0.99))
def test_binomial_tails_equal_brute_force(k: int, n: int, p: float) -> None:
    assert binom_cdf(k, n, p) == pytest.approx(brute_binom_cdf(k, n, p), abs=1e-12)
    assert binom_sf(k, n, p) == pytest.approx(1 - brute_binom_cdf(k - 1, n, p), abs=1e-12)


@given(st.integers(0, 80), st.floats(0.1, 60))
def test_poisson_cdf_equals_brute_force(k: int, lam: float) -> None:
    assert poisson_cdf(k, lam) == pytest.approx(brute_poisson_cdf(k, lam), abs=1e-12)


def test_tails_are_tiny_far_out_and_fast_at_large_volume() -> None:
    # a broken checkout: 2 orders from 60 carts where 45% used to order
    assert binom_cdf(2, 60, 0.45) < 1e-12
    # a payment outage: 85 of 100 attempts failed where 4% used to
    assert binom_sf(85, 100, 0.04) < 1e-80
    assert poisson_cdf(0, 80.0) == pytest.approx(math.exp(-80.0))
    assert 0.0 < binom_cdf(4_900, 100_000, 0.05) < 0.1  # large n: no overflow, no timeout


def test_edges() -> None:
    assert binom_cdf(-1, 10, 0.5) == 0.0 and binom_cdf(10, 10, 0.5) == 1.0
    assert binom_sf(0, 10, 0.5) == 1.0 and binom_sf(11, 10, 0.5) == 0.0
    assert binom_sf(1, 10, 0.0) == 0.0 and binom_cdf(3, 10, 1.0) == 0.0
    assert poisson_cdf(-1, 3.0) == 0.0 and poisson_cdf(0, 0.0) == 1.0


def test_per_test_alpha_shares_the_false_alarm_budget() -> None:
    one = per_test_alpha(0.01, 1, 1, 1)
    assert one == pytest.approx(0.01)
    # a day of minute windows x 4 stages, one significant window fires: Bonferroni
    assert per_test_alpha(0.01, 5760, 1, 1) == pytest.approx(0.01 / 5760)
    # 2 of 3 windows needed: each window may be far less strict for the same budget
    two_of_three = per_test_alpha(0.01, 5760, 2, 3)
    assert two_of_three == pytest.approx(math.sqrt(0.01 / (5760 * 2)))
    assert two_of_three > 0.01 / 5760
    with pytest.raises(ValueError):
        per_test_alpha(1.5, 10, 1, 1)
    with pytest.raises(ValueError):
        per_test_alpha(0.01, 10, 3, 2)
