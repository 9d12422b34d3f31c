"""StockOut and LowStockSoon: they follow the inventory stage's status of a SKU."""

from __future__ import annotations

from alerts.detectors.base import Signal
from alerts.thresholds import Thresholds
from streams.inventory.stock import Status, StockStatus

__all__ = ["stock_signals"]


def stock_signals(status: StockStatus, t: Thresholds) -> list[Signal]:
    """The firing alert of the status and the resolution of the other (both resolved when
    the SKU is fine again); LowStockSoon resolves after a hold, so it does not flap."""
    labels = {"store_id": status.store_id, "sku": status.sku}
    where = f"{status.sku} at {status.store_id}"
    rule = t.stock
    out = Signal(alertname="StockOut", labels=labels, firing=False, event_ms=status.ts,
                 resolve_hold_s=rule.out_resolve_hold_s)  # fmt: skip
    low = Signal(alertname="LowStockSoon", labels=labels, firing=False, event_ms=status.ts,
                 resolve_hold_s=rule.low_resolve_hold_s)  # fmt: skip
    rate = f"{status.velocity_per_min:.3g} units/min"
    if status.status is Status.OUT:
        fire = Signal(
            alertname="StockOut", labels=labels, firing=True, event_ms=status.ts,
            severity="critical", summary=f"{where} is out of stock",
            description=f"Available stock is {status.available} (below zero: oversold);"
            f" recent sales {rate}.",
            # the rate it sold at when it ran out: the post-sale review's lost-sales estimate
            details={"available": str(status.available),
                     "velocity_per_min": f"{status.velocity_per_min:.3f}"},
        )  # fmt: skip
        return [fire, low]
    if status.status is Status.LOW:
        minutes = status.minutes_to_stockout
        eta = "soon" if minutes is None else f"in about {minutes:.0f} min"
        fire = Signal(
            alertname="LowStockSoon", labels=labels, firing=True, event_ms=status.ts,
            severity="warning", summary=f"{where} runs out of stock {eta}",
            description=f"{status.available} units left, selling {rate}.",
            details={"available": str(status.available),
                     "minutes_to_stockout": "" if minutes is None else f"{minutes:.1f}"},
        )  # fmt: skip
        return [fire, out]
    return [out, low]
