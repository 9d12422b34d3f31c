"""Stock changes: what stage 2 tells the inventory table (docs/architecture.md).

One record per change of a store x sku's available stock, keyed and partitioned by
`store_id|sku`. `kind` is snapshot (qty = available), restock, adjust, return (qty added),
hold (negative qty) or release. `id` makes every change idempotent downstream.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = ["INVENTORY_KINDS", "StockChange", "from_inventory_event", "stock_key"]

INVENTORY_KINDS = frozenset({"snapshot", "restock", "adjust"})


class StockChange(TypedDict):
    id: str
    store_id: str
    sku: str
    ts: int
    kind: str
    qty: int


def stock_key(change: StockChange) -> str:
    return f"{change['store_id']}|{change['sku']}"


def from_inventory_event(event: dict[str, Any]) -> StockChange | None:
    """The change an inventory or return event makes, or None if it makes none."""
    event_type = event["type"]
    if event_type == "stock_snapshot":
        kind, qty = "snapshot", event["available"]
    elif event_type == "restock":
        kind, qty = "restock", event["qty"]
    elif event_type == "stock_adjust":
        kind, qty = "adjust", event["delta"]
    elif event_type == "return_received" and event.get("restock", True):
        kind, qty = "return", event["qty"]
    else:
        return None
    return StockChange(
        id=event["event_id"],
        store_id=event["store_id"],
        sku=event["sku"],
        ts=event["ts"],
        kind=kind,
        qty=qty,
    )
