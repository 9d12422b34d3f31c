"""RefundSurge: a store's paid orders bring far more refund requests than usual."""

from __future__ import annotations

from typing import ClassVar

from alerts.detectors.base import Context, WindowView
from alerts.detectors.surge import PaidOrderSurge
from alerts.thresholds import SurgeRule, Thresholds

__all__ = ["RefundSurge"]


class RefundSurge(PaidOrderSurge):
    """Refund requests / paid orders of a store (alerts/detectors/surge.py)."""

    alertname: ClassVar[str] = "RefundSurge"
    what: ClassVar[str] = "refund requests"

    def rule(self, t: Thresholds) -> SurgeRule:
        return t.refund

    def events(self, view: WindowView) -> int:
        return view.refund_requested

    def reference(self, ctx: Context) -> float | None:
        return None if ctx.reference is None else ctx.reference.refund_rate
