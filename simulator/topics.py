"""The five input topics (by suffix) and the event types each carries (docs/contract.md)."""

from __future__ import annotations

__all__ = [
    "AFTERSALES",
    "CARTS",
    "CLICKS",
    "INVENTORY",
    "ORDERS",
    "STAGES",
    "TOPICS",
    "TOPIC_OF_TYPE",
]

CLICKS, CARTS, ORDERS, AFTERSALES, INVENTORY = range(5)
TOPICS = ("clicks", "carts", "orders", "aftersales", "inventory")

TOPIC_OF_TYPE = {
    "impression": "clicks",
    "click": "clicks",
    "cart_add": "carts",
    "cart_remove": "carts",
    "order_created": "orders",
    "order_paid": "orders",
    "payment_failed": "orders",
    "order_cancelled": "orders",
    "refund_requested": "aftersales",
    "refund_completed": "aftersales",
    "return_received": "aftersales",
    "complaint": "aftersales",
    "stock_snapshot": "inventory",
    "restock": "inventory",
    "stock_adjust": "inventory",
}

# funnel stages, in order (docs/architecture.md)
STAGES = ("impression", "click", "cart", "order", "pay")
