"""New and returning buyers: decided in event time, replay-safe, lookback and store flag."""

from __future__ import annotations

from typing import Any

from streams.funnel.aggregates import WindowAggregate
from streams.merge.buyers import BuyerCounts, BuyerHistory

W = 60_000
DAY = 24 * 3600 * 1000


def window(*payers: list[Any]) -> WindowAggregate:
    return WindowAggregate(payers=[list(p) for p in payers])


def test_first_order_is_new_the_next_returning_whatever_the_order_within_a_window() -> None:
    history = BuyerHistory({}, lookback_ms=365 * DAY)
    # u1 pays twice in one window (listed late first), u2 once; then u1 again, in web
    first = window(["u1", 2_000, "e2", None], ["u2", 1_500, "e3", None], ["u1", 1_000, "e1", None])
    counts = history.classify([(("s", "app", 0), first)])
    assert counts == {("s", "app", 0): BuyerCounts(new=2, returning=0)}
    later = history.classify(
        [(("s", "app", W), window(["u2", W + 5, "e5", None])),
         (("s", "web", W), window(["u1", W + 9, "e9", None], ["u3", W + 1, "e6", None]))]
    )  # fmt: skip
    assert later == {("s", "app", W): BuyerCounts(0, 1), ("s", "web", W): BuyerCounts(1, 1)}
    assert later["s", "web", W].repurchase_rate == 0.5


def test_a_user_paying_in_two_channels_of_one_window_is_new_in_the_earlier_only() -> None:
    history = BuyerHistory({}, lookback_ms=365 * DAY)
    counts = history.classify(
        [(("s", "app", 0), window(["u1", 3_000, "b", None])),
         (("s", "web", 0), window(["u1", 2_000, "a", None]))]
    )  # fmt: skip
    assert counts == {("s", "app", 0): BuyerCounts(0, 1), ("s", "web", 0): BuyerCounts(1, 0)}


def test_a_replayed_window_decides_as_the_first_run() -> None:
    table: dict[str, bytes] = {}
    history = BuyerHistory(table, lookback_ms=365 * DAY)
    history.classify([(("s", "app", 0), window(["u1", 1_000, "a", None]))])
    final = [(("s", "app", W), window(["u1", W + 1, "b", None], ["u2", W + 2, "c", None]))]
    once = history.classify(final)
    assert history.classify(final) == once == {("s", "app", W): BuyerCounts(1, 1)}


def test_lookback_and_the_stores_flag() -> None:
    history = BuyerHistory({}, lookback_ms=DAY)
    history.classify([(("s", "app", 0), window(["u1", 0, "a", None], ["u2", 0, "b", None]))])
    start = 2 * DAY
    counts = history.classify(
        [(("s", "app", start), window(["u1", start, "c", None], ["u2", start, "d", False],
                                      ["u3", start, "e", True]))]
    )  # fmt: skip
    # u1 last paid two days ago (beyond the lookback): new; u2 flagged returning; u3 flagged new
    assert counts == {("s", "app", start): BuyerCounts(new=2, returning=1)}


def test_stores_keep_their_own_history() -> None:
    history = BuyerHistory({}, lookback_ms=365 * DAY)
    history.classify([(("s1", "app", 0), window(["u1", 1, "a", None]))])
    counts = history.classify([(("s2", "app", W), window(["u1", W, "b", None]))])
    assert counts == {("s2", "app", W): BuyerCounts(1, 0)}
