"""StockOut, LowStockSoon and SlowMovingStock: they follow the inventory stage's status of
a SKU."""

from __future__ import annotations

from alerts.detectors.base import Signal
from alerts.thresholds import Thresholds
from streams.inventory.stock import Status, StockStatus

__all__ = ["stock_signals"]


def stock_signals(status: StockStatus, t: Thresholds) -> list[Signal]:
    """The firing alert of the status and the resolution of the others (all resolved when
    the SKU is fine again); LowStockSoon and SlowMovingStock resolve after a hold, so they
    do not flap (the slow status has hysteresis of its own, streams/inventory/stock.py)."""
    labels = {"store_id": status.store_id, "sku": status.sku}
    where = f"{status.sku} at {status.store_id}"
    rule = t.stock
    out = Signal(alertname="StockOut", labels=labels, firing=False, event_ms=status.ts,
                 resolve_hold_s=rule.out_resolve_hold_s)  # fmt: skip
    low = Signal(alertname="LowStockSoon", labels=labels, firing=False, event_ms=status.ts,
                 resolve_hold_s=rule.low_resolve_hold_s)  # fmt: skip
    slow = Signal(alertname="SlowMovingStock", labels=labels, firing=False, event_ms=status.ts,
                  resolve_hold_s=rule.slow_resolve_hold_s)  # fmt: skip
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
        return [fire, low, slow]
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
        return [fire, out, slow]
    if status.status is Status.SLOW:
        return [_slow_moving(status, labels, where, rate), out, low]
    return [out, low, slow]


def _slow_moving(status: StockStatus, labels: dict[str, str], where: str, rate: str) -> Signal:
    """A warning when the SKU has not sold at all since stock was tracked, info when it
    sells, far too slowly for its stock."""
    never = status.last_sale_ts is None
    if never:
        how = "has not sold since its stock was tracked"
    else:
        idle_min = (status.ts - status.last_sale_ts) / 60_000
        how = f"last sold {idle_min:.0f} min ago (event time), selling {rate}"
    return Signal(
        alertname="SlowMovingStock", labels=labels, firing=True, event_ms=status.ts,
        severity="warning" if never else "info",
        summary=f"{where} is slow-moving: {status.available} units on hand",
        description=f"{status.available} units on hand; it {how}.",
        details={"available": str(status.available),
                 "last_sale_ts": "" if never else str(status.last_sale_ts)},
    )  # fmt: skip
