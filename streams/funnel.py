"""Stage 2: per-partition funnel aggregation (phase 1 of the two-phase aggregation).

Events arrive keyed by content (streams/routing.py), so duplicates and the events of one
order meet here whatever key the store used. For each partition this keeps the watermark
(streams/windows.py), the dedup memory, the order states and the open windows' partial
aggregates; it closes windows on the watermark plus grace and hands their partials, with
the watermark, to stage 3 (streams/merge.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from streams.aggregates import WindowAggregate
from streams.dedup import Deduplicator
from streams.orders import OrderState, apply_order_event
from streams.stock_changes import StockChange, from_inventory_event, from_order_move
from streams.windows import Watermark, window_start

__all__ = ["BatchOutcome", "FunnelPartition", "OrderStore", "WindowKey"]

WindowKey = tuple[str, str, int]  # store_id, channel, window start (ms)

_STAGE_OF_TYPE = {
    "impression": "impression",
    "click": "click",
    "cart_add": "cart",
}
_ORDER_TYPES = frozenset({"order_created", "order_paid", "payment_failed", "order_cancelled"})


class OrderStore(Protocol):
    def get(self, key: str) -> bytes | None: ...


@dataclass
class BatchOutcome:
    """What one batch of one partition changed, for the agent to persist, send and count."""

    stock_changes: list[StockChange] = field(default_factory=list)
    touched_windows: set[WindowKey] = field(default_factory=set)
    touched_orders: dict[str, OrderState] = field(default_factory=dict)
    funnel: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    gmv: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    paid_orders: Counter[tuple[str, str]] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)  # by event type
    late: Counter[str] = field(default_factory=Counter)  # by event type


class FunnelPartition:
    """The stage-2 state of one partition of the routed-events topic."""

    def __init__(self, partition: int, window_ms: int, grace_ms: int,
                 dedup_horizon_ms: int) -> None:  # fmt: skip
        self.partition = partition
        self.window_ms = window_ms
        self.watermark = Watermark(window_ms, grace_ms)
        self.dedup = Deduplicator(dedup_horizon_ms)
        self.windows: dict[WindowKey, WindowAggregate] = {}

    def apply(
        self, events: list[dict[str, Any]], orders: OrderStore, out: BatchOutcome | None = None
    ) -> BatchOutcome:
        out = out if out is not None else BatchOutcome()
        is_late = self.watermark.is_late
        for event in events:
            ts_ms = event["ts"]
            if self.dedup.seen(event["event_id"], ts_ms):
                out.duplicates[event["type"]] += 1
                continue
            # late in its own input partition (stage 1), or its window is already closed here
            late = event.get("late", False) or is_late(ts_ms)
            if late:
                out.late[event["type"]] += 1
            self._apply_one(event, late, orders, out)
        return out

    def _apply_one(
        self, event: dict[str, Any], late: bool, orders: OrderStore, out: BatchOutcome
    ) -> None:
        event_type = event["type"]
        stage = _STAGE_OF_TYPE.get(event_type)
        if stage is not None:
            if not late:
                self._window(event, out).add_stage(stage, event.get("user_id"))
                out.funnel[event["store_id"], event["channel"], stage] += 1
            return
        if event_type in _ORDER_TYPES:
            self._apply_order(event, late, orders, out)
            return
        if event_type == "refund_requested" and not late:
            self._window(event, out).refund_requested += 1
            return
        change = from_inventory_event(event)
        if change is not None:
            out.stock_changes.append(change)

    def _apply_order(
        self, event: dict[str, Any], late: bool, orders: OrderStore, out: BatchOutcome
    ) -> None:
        store_id = event["store_id"]
        key = f"{store_id}|{event['order_id']}"
        state = out.touched_orders.get(key)
        if state is None:
            raw = orders.get(key)
            state = OrderState.decode(raw) if raw is not None else OrderState()
            out.touched_orders[key] = state
        outcome = apply_order_event(state, event)
        out.stock_changes.extend(from_order_move(store_id, move) for move in outcome.stock_moves)
        if late:
            return
        channel = event["channel"]
        if outcome.first_created:
            self._window(event, out).add_stage("order", event["user_id"])
            out.funnel[store_id, channel, "order"] += 1
        elif outcome.first_paid:
            window = self._window(event, out)
            window.add_stage("pay", event["user_id"])
            amount, currency = Decimal(event["amount"]), event["currency"]
            window.add_payment(amount, currency)
            out.funnel[store_id, channel, "pay"] += 1
            out.paid_orders[store_id, channel] += 1
            gmv_key = (store_id, channel, currency)
            out.gmv[gmv_key] = out.gmv.get(gmv_key, Decimal(0)) + amount
        elif event["type"] == "payment_failed":
            self._window(event, out).payment_failed += 1

    def _window(self, event: dict[str, Any], out: BatchOutcome) -> WindowAggregate:
        key = (event["store_id"], event["channel"], window_start(event["ts"], self.window_ms))
        out.touched_windows.add(key)
        aggregate = self.windows.get(key)
        if aggregate is None:
            aggregate = self.windows[key] = WindowAggregate()
        return aggregate

    def close_due(self) -> list[tuple[WindowKey, WindowAggregate]]:
        """Remove and return the windows that the watermark has closed."""
        closed_before = self.watermark.closed_before_ms
        if closed_before is None:
            return []
        due = [key for key in self.windows if key[2] < closed_before]
        return [(key, self.windows.pop(key)) for key in sorted(due, key=lambda k: k[2])]
