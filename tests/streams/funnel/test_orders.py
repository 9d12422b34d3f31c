from __future__ import annotations

import itertools
from typing import Any

from streams.funnel.orders import OrderState, apply_order_event


def order_event(
    event_type: str, ts: int, lines: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "type": event_type,
        "order_id": "o1",
        "store_id": "s1",
        "ts": ts,
        "lines": lines or [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}, {"sku": "A", "qty": 1}],
    }


def run(events: list[dict[str, Any]]) -> tuple[dict[str, int], list[str]]:
    state = OrderState()
    stock: dict[str, int] = {}
    ids = []
    for event in events:
        state = OrderState.decode(state.encode())  # state survives its changelog encoding
        for change in apply_order_event(state, event):
            stock[change["sku"]] = stock.get(change["sku"], 0) + change["qty"]
            ids.append(change["id"])
    return stock, ids


def test_hold_is_summed_per_sku_and_made_once() -> None:
    stock, ids = run([order_event("order_created", 1)] * 3)
    assert stock == {"A": -3, "B": -1}
    assert sorted(ids) == ["hold:o1:A", "hold:o1:B"]


def test_payment_moves_no_stock() -> None:
    stock, _ = run([order_event("order_paid", 2)] * 2 + [order_event("order_created", 1)])
    assert stock == {"A": -3, "B": -1}


def test_any_arrival_order_gives_the_same_result() -> None:
    events = [
        order_event("order_created", 1),
        order_event("order_paid", 2),
        order_event("order_cancelled", 3),
        order_event("order_cancelled", 4),
    ]
    results = set()
    for perm in itertools.permutations(events):
        stock, ids = run(list(perm))
        results.add((tuple(sorted(stock.items())), tuple(sorted(ids))))
    assert results == {
        ((("A", 0), ("B", 0)),
         ("hold:o1:A", "hold:o1:B", "release:o1:A", "release:o1:B")),
    }  # fmt: skip


def test_cancel_before_create_releases_at_cancel_time() -> None:
    state = OrderState()
    apply_order_event(state, order_event("order_cancelled", 50))
    moves = {(c["id"], c["ts"], c["qty"])
             for c in apply_order_event(state, order_event("order_created", 10))}  # fmt: skip
    assert ("hold:o1:A", 10, -3) in moves
    assert ("release:o1:A", 50, 3) in moves
