"""Factories of valid contract events, one per type; tests override single fields."""

from __future__ import annotations

import itertools
import time
from typing import Any

_ids = itertools.count()

_LINE = {"sku": "sku-1", "qty": 2, "unit_price": "19.90"}
_BY_TYPE: dict[str, dict[str, Any]] = {
    "impression": {"user_id": "u1", "sku": "sku-1", "category": "shoes", "source": "search"},
    "click": {"user_id": "u1", "sku": "sku-1"},
    "cart_add": {"user_id": "u1", "sku": "sku-1", "qty": 1, "unit_price": 19.9},
    "cart_remove": {"user_id": "u1", "sku": "sku-1", "qty": 1},
    "order_created": {"user_id": "u1", "order_id": "o1", "lines": [_LINE], "amount": "35.00"},
    "order_paid": {"user_id": "u1", "order_id": "o1", "lines": [_LINE], "amount": "35.00"},
    "payment_failed": {
        "user_id": "u1",
        "order_id": "o1",
        "lines": [_LINE],
        "amount": 35,
        "reason": "declined",
    },
    "order_cancelled": {"user_id": "u1", "order_id": "o1", "lines": [_LINE], "amount": "35.00"},
    "refund_requested": {"order_id": "o1", "amount": "35.00", "reason": "size"},
    "refund_completed": {"order_id": "o1", "amount": "35.00"},
    "return_received": {"order_id": "o1", "sku": "sku-1", "qty": 1},
    "complaint": {"order_id": "o1", "reason": "late delivery"},
    "stock_snapshot": {"sku": "sku-1", "available": 100},
    "restock": {"sku": "sku-1", "qty": 50},
    "stock_adjust": {"sku": "sku-1", "delta": -3, "reason": "damaged"},
}

TOPIC_OF_TYPE = {
    "impression": "clicks", "click": "clicks",
    "cart_add": "carts", "cart_remove": "carts",
    "order_created": "orders", "order_paid": "orders",
    "payment_failed": "orders", "order_cancelled": "orders",
    "refund_requested": "aftersales", "refund_completed": "aftersales",
    "return_received": "aftersales", "complaint": "aftersales",
    "stock_snapshot": "inventory", "restock": "inventory", "stock_adjust": "inventory",
}  # fmt: skip

EVENT_TYPES = tuple(_BY_TYPE)


def make_event(event_type: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"ev-{next(_ids)}",
        "type": event_type,
        "ts": time.time_ns() // 1_000_000,
        "store_id": "store-1",
        "channel": "app",
    }
    event.update(_BY_TYPE[event_type])
    event.update(overrides)
    return event
