"""Compare final window records of `salewatch.windows` with the simulator's ground truth."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from simulator.truth import WindowTruth

WindowId = tuple[str, str, int]  # store_id, channel, window start


def window_id(record: dict[str, Any]) -> WindowId:
    return record["store_id"], record["channel"], record["window_start"]


def window_differences(record: dict[str, Any], truth: WindowTruth) -> list[str]:
    """What differs between a window record and its truth (UV: outside the sketch bounds)."""
    found = []
    if record["counts"] != truth.counts:
        found.append(f"counts {record['counts']} != {truth.counts}")
    for stage, users in truth.users.items():
        lower, upper = record["users_lower"][stage], record["users_upper"][stage]
        if not lower <= len(users) <= upper:
            found.append(f"{stage} users {len(users)} outside [{lower}, {upper}]")
    gmv = sum((Decimal(v) for v in record["gmv"].values()), Decimal(0))
    for name, got, expected in (
        ("gmv", gmv, truth.gmv),
        ("paid_orders", record["paid_orders"], truth.paid_orders),
        ("payment_failed", record["payment_failed"], truth.payment_failed),
        ("refund_requested", record["refund_requested"], truth.refund_requested),
    ):
        if got != expected:
            found.append(f"{name} {got} != {expected}")
    return found
