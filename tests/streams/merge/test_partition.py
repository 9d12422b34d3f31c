"""Stage 3's window record: figures that need more than a sum of the partials."""

from __future__ import annotations

from decimal import Decimal

from streams.funnel.aggregates import WindowAggregate
from streams.merge.partition import MergePartition, window_record

W = 60_000


def paid_partial(source: int, *payments: tuple[str, str]) -> dict[str, object]:
    """A stage-2 message closing window 0 with these (amount, currency) payments."""
    agg = WindowAggregate()
    for amount, currency in payments:
        agg.add_payment(Decimal(amount), currency)
    partial = {"store_id": "s1", "channel": "app", "window_start": 0, "agg": agg.to_dict()}
    return {"source": source, "closed_before": W, "partials": [partial]}


def test_aov_divides_each_currencys_gmv_by_its_own_paid_orders() -> None:
    merge = MergePartition(partition=0, sources=2)
    merge.add(paid_partial(0, ("100.00", "CNY"), ("50.00", "USD")))
    merge.add(paid_partial(1, ("120.00", "CNY"), ("80.00", "CNY")))
    ((key, merged),) = merge.finalize()
    record = window_record(key, W, merged)
    assert record["aov"] == {"CNY": "100.00", "USD": "50.00"}
    assert record["paid_orders"] == 4
    assert record["paid_orders_by_currency"] == {"CNY": 3, "USD": 1}


def test_a_partial_saved_before_paid_orders_per_currency_keeps_its_single_currency_aov() -> None:
    agg = WindowAggregate()
    agg.add_payment(Decimal("30.00"), "CNY")
    agg.add_payment(Decimal("10.00"), "CNY")
    older = agg.to_dict()
    del older["paid_orders_by_currency"]
    record = window_record(("s1", "app", 0), W, WindowAggregate.from_dict(older))
    assert record["aov"] == {"CNY": "20.00"}


def test_a_partials_set_cut_in_parts_moves_the_frontier_with_its_last_part_only() -> None:
    """Stage 2 cuts a large set of closed partials into several messages; only the last one
    carries the watermark, so no window is final before all its partials are in."""
    merge = MergePartition(partition=0, sources=2)
    merge.add({"source": 1, "closed_before": 3 * W, "partials": []})
    first, second = (
        {"store_id": "s1", "channel": "app", "window_start": start, "agg": one_paid(start)}
        for start in (0, W)
    )
    merge.add({"source": 0, "partials": [first]})  # a first part: no closed_before
    assert merge.finalize() == []
    merge.add({"source": 0, "closed_before": 2 * W, "partials": [second]})
    final = merge.finalize()
    assert [key for key, _ in final] == [("s1", "app", 0), ("s1", "app", W)]
    assert all(aggregate.paid_orders == 1 for _, aggregate in final)


def one_paid(start: int) -> dict[str, object]:
    agg = WindowAggregate()
    agg.add_payment(Decimal("10.00"), "CNY")
    return agg.to_dict()
