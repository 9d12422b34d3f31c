"""ComplaintSurge: a store's paid orders bring far more complaints than usual (late
deliveries, damaged or oversold goods, double charges)."""

from __future__ import annotations

from typing import ClassVar

from alerts.detectors.base import Context, WindowView
from alerts.detectors.surge import PaidOrderSurge
from alerts.thresholds import SurgeRule, Thresholds

__all__ = ["ComplaintSurge"]


class ComplaintSurge(PaidOrderSurge):
    """Complaints / paid orders of a store (alerts/detectors/surge.py)."""

    alertname: ClassVar[str] = "ComplaintSurge"
    what: ClassVar[str] = "complaints"

    def rule(self, t: Thresholds) -> SurgeRule:
        return t.complaint

    def events(self, view: WindowView) -> int:
        return view.complaints

    def reference(self, ctx: Context) -> float | None:
        return None if ctx.reference is None else ctx.reference.complaint_rate
