"""Stage 2 and stage 3 logic without a broker."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from streams.funnel.aggregates import WindowAggregate
from streams.funnel.partition import FunnelPartition, Outcome
from streams.merge.buyers import BuyerCounts
from streams.merge.partition import MergePartition, Spend, window_record

W = 60_000


def ev(event_type: str, ts: int, event_id: str, **fields: Any) -> dict[str, Any]:
    base = {"type": event_type, "ts": ts, "event_id": event_id, "store_id": "s1",
            "channel": "app", "user_id": fields.pop("user_id", "u1")}  # fmt: skip
    if event_type.startswith("order") or event_type == "payment_failed":
        base |= {"order_id": "o1", "lines": [{"sku": "A", "qty": 1}], "amount": "10.50",
                 "currency": "CNY"}  # fmt: skip
    return base | fields


def partition(grace_ms: int = 30_000) -> FunnelPartition:
    return FunnelPartition(0, W, grace_ms, dedup_horizon_ms=900_000)


def test_stages_duplicates_and_order_state() -> None:
    stage2 = partition()
    events = [
        ev("impression", 1_000, "e1", source="search", category="shoes"),
        ev("impression", 2_000, "e2", user_id="u2", source="live"),
        ev("impression", 1_000, "e1", source="search", category="shoes"),  # duplicate
        ev("click", 3_000, "e3", source="search", category="shoes"),
        ev("cart_add", 4_000, "e4"), ev("cart_remove", 4_500, "e5"),
        ev("order_created", 5_000, "e6"), ev("order_created", 5_100, "e7"),  # same order again
        ev("payment_failed", 5_500, "e8"), ev("order_paid", 6_000, "e9", first_purchase=True),
        ev("order_paid", 6_100, "e10"),
        ev("refund_requested", 7_000, "e11", order_id="o1", amount="4.20"),
        ev("refund_completed", 7_200, "e12", order_id="o1", amount="4.20"),
        ev("return_received", 7_500, "e13", order_id="o1", sku="A", qty=1),
        ev("complaint", 8_000, "e14"),
    ]  # fmt: skip
    outcome = stage2.apply(events, orders={})
    assert outcome.outcomes[("impression", Outcome.DUPLICATE)] == 1
    # the later order_created and order_paid of the order count in no window
    assert outcome.outcomes[("order_created", Outcome.IGNORED)] == 1
    assert outcome.outcomes[("order_paid", Outcome.IGNORED)] == 1
    assert sum(outcome.outcomes.values()) == len(events)
    stage2.watermark.report({"clicks:0": [W + 30_000, False]}, expected_inputs=1, wall_ms=0)
    [(key, aggregate)] = stage2.close_due()
    assert key == ("s1", "app", 0)
    assert aggregate.counts == {"impression": 2, "click": 1, "cart": 1, "order": 1, "pay": 1}
    assert aggregate.unique_users("impression")[0] == 2
    assert aggregate.gmv == {"CNY": Decimal("10.50")}
    assert (aggregate.paid_orders, aggregate.payment_failed, aggregate.refund_requested) == (
        1, 1, 1,
    )  # fmt: skip
    assert (aggregate.refund_amount, aggregate.returns, aggregate.complaints) == (
        Decimal("4.20"), 1, 1,
    )  # fmt: skip
    assert outcome.outcomes[("refund_completed", Outcome.IGNORED)] == 1
    assert aggregate.by_source == {"search": [1, 1], "live": [1, 0]}
    assert aggregate.by_category == {"shoes": [1, 1]}
    assert aggregate.payers == [["u1", 6_000, "e9", True]]  # the order's earliest order_paid
    assert [c["kind"] for c in outcome.stock_changes] == ["hold", "return"]


def test_late_events_are_counted_not_added_but_still_move_stock() -> None:
    stage2 = partition(grace_ms=10_000)
    stage2.apply([ev("click", 1_000, "a"), ev("click", 75_000, "b")], orders={})
    stage2.watermark.report({"clicks:0": [75_000, False]}, expected_inputs=1, wall_ms=0)
    closed = stage2.close_due()
    assert [key for key, _ in closed] == [("s1", "app", 0)]
    outcome = stage2.apply([ev("click", 2_000, "c"), ev("order_created", 3_000, "d")], orders={})
    assert outcome.outcomes == {("click", Outcome.LATE): 1, ("order_created", Outcome.LATE): 1}
    assert ("s1", "app", 0) not in stage2.windows
    assert [c["kind"] for c in outcome.stock_changes] == ["hold"]


def closed_counts(stage2: FunnelPartition, until_ms: int) -> dict[int, WindowAggregate]:
    stage2.watermark.report({"orders:0": [until_ms, False]}, expected_inputs=1, wall_ms=0)
    return {key[2]: aggregate for key, aggregate in stage2.close_due()}


def test_the_earliest_payment_by_event_time_counts_whatever_the_arrival_order() -> None:
    """A retried order_paid at minute 23.00 processed before the first at 22.93: the
    earlier one counts, in its own window, with its amount."""
    first = ev("order_paid", 22 * W + 56_000, "pay-1", amount="10.00")
    retry = ev("order_paid", 23 * W, "pay-2", amount="12.00")
    results = []
    for arrival in ([first, retry], [retry, first]):
        stage2 = partition()
        outcome = stage2.apply(arrival, orders={})
        assert sorted(outcome.outcomes.items()) == [
            (("order_paid", Outcome.COUNTED), 1), (("order_paid", Outcome.IGNORED), 1)
        ]  # fmt: skip
        windows = closed_counts(stage2, 25 * W)
        results.append({start: (a.counts["pay"], a.paid_orders, a.gmv) for start, a in
                        windows.items()})  # fmt: skip
    assert results[0] == results[1]
    assert results[0][22 * W] == (1, 1, {"CNY": Decimal("10.00")})
    assert results[0].get(23 * W, (0, 0, {})) == (0, 0, {})


def test_the_earliest_order_created_counts_across_batches_and_state_reloads() -> None:
    orders: dict[str, bytes] = {}
    stage2 = partition()
    later = stage2.apply([ev("order_created", 3 * W + 5_000, "c-2", user_id="u2")], orders)
    orders |= {key: state.encode() for key, state in later.touched_orders.items()}
    earlier = stage2.apply([ev("order_created", 2 * W + 5_000, "c-1", user_id="u1")], orders)
    assert earlier.outcomes == {("order_created", Outcome.IGNORED): 1}  # live counters moved once
    windows = closed_counts(stage2, 5 * W)
    assert windows[2 * W].counts["order"] == 1 and windows[2 * W].unique_users("order")[0] == 1
    assert 3 * W not in windows  # nothing left in it: no result


def test_a_late_copy_does_not_erase_its_on_time_original() -> None:
    """A re-sent copy read late from another input partition reaches stage 2 before the
    original: the original still counts in its window."""
    stage2 = partition()
    copy = ev("click", 1_000, "e1") | {"late": True}
    outcome = stage2.apply([copy, ev("click", 1_000, "e1"), copy], orders={})
    assert outcome.outcomes == {
        ("click", Outcome.LATE): 1, ("click", Outcome.COUNTED): 1, ("click", Outcome.DUPLICATE): 1
    }  # fmt: skip
    assert closed_counts(stage2, 2 * W)[0].counts["click"] == 1


def partial_message(
    source: int, closed_before: int | None, counts: dict[str, int] | None = None
) -> dict[str, Any]:
    agg = WindowAggregate()
    for stage, n in (counts or {}).items():
        for i in range(n):
            agg.add_stage(stage, f"u{source}-{i}")
    partials = [{"store_id": "s1", "channel": "app", "window_start": 0, "agg": agg.to_dict()}]
    return {"source": source, "closed_before": closed_before,
            "partials": partials if counts else []}  # fmt: skip


def test_merge_waits_for_every_source_then_emits_once() -> None:
    merge = MergePartition(partition=0, sources=2)
    merge.add(partial_message(0, W, counts={"click": 3}))
    assert merge.finalize() == []  # source 1 has not reported
    merge.add(partial_message(1, 0))
    assert merge.finalize() == []  # source 1 has not closed the window yet
    merge.add(partial_message(1, W, counts={"click": 2, "impression": 4}))
    [(key, aggregate)] = merge.finalize()
    assert key == ("s1", "app", 0)
    assert aggregate.counts["click"] == 5
    assert aggregate.unique_users("click")[0] == 5
    assert merge.finalize() == []
    # a partial re-sent after the window was emitted is a replay, never a second result
    assert merge.add(partial_message(0, W, counts={"click": 3})) == set()
    assert merge.finalize() == []
    assert merge.missed == []


def test_a_partial_after_its_window_from_a_source_not_merged_is_reported_missed() -> None:
    merge = MergePartition(partition=0, sources=2)
    merge.add(partial_message(0, W, counts={"click": 3}))
    merge.add(partial_message(1, W))  # source 1 says the window is closed, sends nothing
    [_] = merge.finalize()
    merge.add(partial_message(1, W, counts={"click": 2}))
    assert merge.missed == [(("s1", "app", 0), 1, 2)]


def test_frontier_is_the_slowest_source() -> None:
    merge = MergePartition(partition=0, sources=3)
    merge.add(partial_message(0, 2 * W, counts={"click": 1}))
    merge.add(partial_message(1, W))
    assert merge.frontier() is None  # source 2 has not reported
    merge.add(partial_message(2, None))
    assert merge.frontier() is None  # source 2 has closed nothing yet
    merge.add(partial_message(2, 3 * W))
    assert merge.frontier() == W


def test_window_record_rates() -> None:
    agg = WindowAggregate()
    for stage, n in {"impression": 100, "click": 10, "cart": 4, "order": 2, "pay": 1}.items():
        for i in range(n):
            agg.add_stage(stage, f"u{i}")
    agg.add_payment(Decimal("99.99"), "CNY")
    agg.payment_failed = 3
    agg.refund_requested = 1
    record = window_record(("s1", "app", 0), W, agg)
    assert record["conversion"] == {"click": 0.1, "cart": 0.4, "order": 0.5, "pay": 0.5}
    assert record["payment_failure_rate"] == 0.75
    assert record["refund_rate"] == 1.0
    assert record["gmv"] == {"CNY": "99.99"} and record["aov"] == {"CNY": "99.99"}
    assert record["users_lower"]["impression"] <= 100 <= record["users_upper"]["impression"]
    assert record["window_end"] == W
    assert record["new_buyers"] is None  # an open window's buyers are not decided yet


def test_window_record_operations_kpis() -> None:
    agg = WindowAggregate()
    for n in range(40):
        agg.add_stage("impression", f"u{n}")
        agg.add_traffic("impression", "search" if n % 4 else "live", "shoes")
    for n in range(30, 50):  # 10 of them also saw an impression
        agg.add_stage("click", f"u{n}")
    agg.add_payment(Decimal("10"), "CNY")
    agg.add_payment(Decimal("10"), "CNY")
    agg.add_refund(Decimal("3.5"))
    agg.returns, agg.complaints = 1, 1
    record = window_record(("s1", "app", 0), W, agg, BuyerCounts(new=1, returning=1))
    assert (record["page_views"], record["visitors"]) == (60, 50)
    assert record["visit_depth"] == 1.2
    assert record["by_source"] == {"live": {"impression": 10, "click": 0},
                                   "search": {"impression": 30, "click": 0}}  # fmt: skip
    assert record["by_category"] == {"shoes": {"impression": 40, "click": 0}}
    assert (record["refund_amount"], record["aftersales_rate"], record["complaint_rate"]) == (
        "3.5", 1.0, 0.5,
    )  # fmt: skip
    assert (record["new_buyers"], record["returning_buyers"], record["repurchase_rate"]) == (
        1, 1, 0.5,
    )  # fmt: skip
    assert (record["spend"], record["roi"], record["cost_per_paid_order"]) == (None, None, None)
    priced = window_record(("s1", "app", 0), W, agg, spend=Spend(Decimal("5"), "CNY"))
    assert (priced["spend"], priced["roi"], priced["cost_per_paid_order"]) == (
        {"CNY": "5.00"}, 4.0, "2.50",
    )  # fmt: skip
