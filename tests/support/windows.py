"""Compare final window records of `salewatch.windows` with the simulator's ground truth."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from simulator.truth import WindowTruth

WindowId = tuple[str, str, int]  # store_id, channel, window start


def window_id(record: dict[str, Any]) -> WindowId:
    return record["store_id"], record["channel"], record["window_start"]


def field_differences(record: dict[str, Any], truth: WindowTruth) -> dict[str, list[str]]:
    """What differs between a window record and its truth, per field: `counts` (stages,
    payment_failed, refund_requested), `paid_orders`, `gmv`, `uv` (outside the sketch
    bounds); an empty list where they agree."""
    found: dict[str, list[str]] = {"counts": [], "paid_orders": [], "gmv": [], "uv": []}
    if record["counts"] != truth.counts:
        found["counts"].append(f"counts {record['counts']} != {truth.counts}")
    for stage, users in truth.users.items():
        lower, upper = record["users_lower"][stage], record["users_upper"][stage]
        if not lower <= len(users) <= upper:
            found["uv"].append(f"{stage} users {len(users)} outside [{lower}, {upper}]")
    gmv = sum((Decimal(v) for v in record["gmv"].values()), Decimal(0))
    for field, name, got, expected in (
        ("gmv", "gmv", gmv, truth.gmv),
        ("paid_orders", "paid_orders", record["paid_orders"], truth.paid_orders),
        ("counts", "payment_failed", record["payment_failed"], truth.payment_failed),
        ("counts", "refund_requested", record["refund_requested"], truth.refund_requested),
    ):
        if got != expected:
            found[field].append(f"{name} {got} != {expected}")
    return found


def window_differences(record: dict[str, Any], truth: WindowTruth) -> list[str]:
    """What differs between a window record and its truth (UV: outside the sketch bounds)."""
    return [text for texts in field_differences(record, truth).values() for text in texts]
