"""The fleet's prior for a sparse rate: the other stores' rate, as strong as their spread
allows (alerts.fleet)."""

from __future__ import annotations

import random
import statistics

import pytest

from alerts.fleet import MIN_STORES, FleetRates, RateSums


def fleet(counts: dict[str, tuple[int, int]]) -> FleetRates:
    rates = FleetRates()
    for store, (successes, trials) in counts.items():
        rates.update("RefundSurge", store, successes, trials)
    return rates


def test_alike_stores_give_their_rate_with_all_their_paid_orders() -> None:
    rates = fleet({"s1": (30, 1_000), "s2": (60, 2_000), "s3": (15, 500), "new": (4, 100)})
    prior = rates.prior("RefundSurge", "new")
    assert prior is not None
    # the other stores' rate (3%), and the store's own counts are not in it
    assert prior.successes / prior.trials == pytest.approx(0.03)
    assert prior.trials == pytest.approx(3_500)


def test_a_store_whose_own_history_differs_weakens_its_prior() -> None:
    rates = fleet({"s1": (30, 1_000), "s2": (60, 2_000), "s3": (15, 500), "new": (12, 100)})
    prior = rates.prior("RefundSurge", "new")
    assert prior is not None and prior.trials < 500  # 12% against 3%: a spread


def test_stores_that_differ_leave_the_store_to_its_own_history() -> None:
    # apparel 20%, electronics 3%, groceries 1%: the spread is real, the prior weak
    rates = fleet({"s1": (200, 1_000), "s2": (30, 1_000), "s3": (10, 1_000), "new": (6, 200)})
    prior = rates.prior("RefundSurge", "new")
    assert prior is not None and prior.trials < 20  # against the store's own 200


def spread(counts: list[tuple[int, int]]) -> float:
    sums = RateSums()
    for i, (successes, trials) in enumerate(counts):
        sums.put(f"s{i}", successes, trials)
    return sums.spread()


def test_the_spread_is_what_noise_alone_does_not_explain() -> None:
    rng = random.Random(7)
    alike = [(sum(rng.random() < 0.03 for _ in range(n)), n) for n in (300, 800, 2_000, 5_000)]
    assert spread(alike) < 1e-4  # binomial noise only
    differing = [(30, 1_000), (100, 1_000)]  # 3% and 10%, each known to about +-0.7%
    expected = statistics.variance([0.03, 0.10])
    assert spread(differing) == pytest.approx(expected, rel=0.1)
    # the running sums follow a store that changes and one that leaves
    sums = RateSums()
    for i, (x, n) in enumerate([*alike, *differing]):
        sums.put(f"s{i}", x + 1, n)
    sums.put("s4", 30, 1_000)
    sums.remove("s5")
    assert sums.spread() == pytest.approx(spread([*alike, (30, 1_000)]), abs=1e-12)


def test_too_few_stores_say_nothing() -> None:
    others = {f"s{i}": (30, 1_000) for i in range(MIN_STORES - 1)}
    rates = fleet({**others, "new": (3, 100)})
    assert rates.prior("RefundSurge", "new") is None
    rates.update("RefundSurge", "one-more", 30, 1_000)
    assert rates.prior("RefundSurge", "new") is not None
    rates.forget("one-more")
    assert rates.prior("RefundSurge", "new") is None
    assert rates.prior("ComplaintSurge", "new") is None  # per alert
