"""The order state machine (docs/contract.md): per order, in any arrival order and however
often events repeat, the order counts once, pays once (GMV once), holds stock once and
releases it once.

Which `order_created` / `order_paid` counts in the funnel is decided by event time, not by
arrival: the earliest by (ts, event_id) of those on time. `OrderState` remembers the one
counted so far (`created_by`, `paid_by`); the funnel (streams/funnel/partition.py) moves
the order to an earlier candidate's window while both windows are open.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.inventory.changes import StockChange

__all__ = ["Candidate", "OrderFlag", "OrderState", "apply_order_event"]


class OrderFlag(enum.IntFlag):
    NEW = 0
    CREATED = 1
    CANCELLED = 4


# The event an order counts by in a funnel stage: [ts, event_id, channel]
Candidate = list[Any]


@dataclass
class OrderState:
    flags: OrderFlag = OrderFlag.NEW
    # Kept only while a cancellation waits for its order_created (arrived out of order).
    cancel_ts_ms: int | None = None
    cancel_lines: list[list[Any]] = field(default_factory=list)
    created_by: Candidate | None = None
    paid_by: Candidate | None = None

    def encode(self) -> bytes:
        return orjson.dumps(
            [int(self.flags), self.cancel_ts_ms, self.cancel_lines, self.created_by, self.paid_by]
        )

    @classmethod
    def decode(cls, raw: bytes) -> OrderState:
        flags, cancel_ts_ms, cancel_lines, created_by, paid_by = orjson.loads(raw)
        return cls(OrderFlag(flags), cancel_ts_ms, cancel_lines, created_by, paid_by)


def _qty_by_sku(lines: list[Any]) -> dict[str, int]:
    """Lines as dicts (events) or [sku, qty] pairs (state) -> qty per sku."""
    totals: dict[str, int] = {}
    for line in lines:
        sku, qty = (line["sku"], line["qty"]) if isinstance(line, dict) else line
        totals[sku] = totals.get(sku, 0) + qty
    return totals


def _moves(
    event: dict[str, Any], kind: str, lines: list[Any], sign: int, ts_ms: int
) -> list[StockChange]:
    """The stock changes an order makes: -qty per sku held, +qty released."""
    order_id, store_id = event["order_id"], event["store_id"]
    return [
        StockChange(id=f"{kind}:{order_id}:{sku}", store_id=store_id, sku=sku, ts=ts_ms,
                    kind=kind, qty=sign * qty)
        for sku, qty in _qty_by_sku(lines).items()
    ]  # fmt: skip


def apply_order_event(state: OrderState, event: dict[str, Any]) -> list[StockChange]:
    """Advance the state's stock flags with one (deduplicated) order event; returns the
    stock moves it causes (a hold at the first order_created, a release at the first
    order_cancelled of a created order)."""
    event_type = event["type"]
    ts_ms = event["ts"]
    if event_type == "order_created" and not state.flags & OrderFlag.CREATED:
        state.flags |= OrderFlag.CREATED
        moves = _moves(event, "hold", event["lines"], -1, ts_ms)
        if state.flags & OrderFlag.CANCELLED:
            # The cancellation came first: the hold happened and was given back, in event time.
            assert state.cancel_ts_ms is not None
            moves += _moves(event, "release", state.cancel_lines, +1, state.cancel_ts_ms)
            state.cancel_ts_ms, state.cancel_lines = None, []
        return moves
    if event_type == "order_cancelled" and not state.flags & OrderFlag.CANCELLED:
        state.flags |= OrderFlag.CANCELLED
        if state.flags & OrderFlag.CREATED:
            return _moves(event, "release", event["lines"], +1, ts_ms)
        state.cancel_ts_ms = ts_ms
        state.cancel_lines = [[sku, qty] for sku, qty in _qty_by_sku(event["lines"]).items()]
    return []
