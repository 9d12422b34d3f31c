"""RefundSurge: a store's paid orders bring far more refund requests than usual."""

from __future__ import annotations

from typing import ClassVar

from alerts.detectors.base import Context, Judgement, Sample, WindowView, pct, window_text
from alerts.detectors.ratio import RatioDetector
from alerts.thresholds import HysteresisRule, Thresholds

__all__ = ["RefundSurge"]


class RefundSurge(RatioDetector):
    """Refund requests / paid orders of a store (its channels summed: a bad batch of goods
    is not a channel's problem) at least `baseline_factor` (3) x the baseline and
    significantly so (Fisher's exact test, upper tail), over the last window or, with
    fewer than `pool_volume` paid orders per window, over up to `pooling.max_windows`
    windows. A warning: refunds are costly but not an outage."""

    alertname: ClassVar[str] = "RefundSurge"
    higher = True

    def hysteresis(self, t: Thresholds) -> HysteresisRule:
        return t.refund.hysteresis

    def counts(self, view: WindowView) -> Sample:
        return Sample(view.refund_requested, view.paid_orders)

    def reference(self, ctx: Context) -> float | None:
        return None if ctx.reference is None else ctx.reference.refund_rate

    def volume(self, t: Thresholds) -> float:
        return t.refund.pool_volume

    def effect(self, rate: float, expected: float, t: Thresholds) -> bool:
        return rate >= t.refund.baseline_factor * expected

    def severity(self, rate: float, expected: float, t: Thresholds) -> str:
        return "warning"

    def describe(self, j: Judgement, where: str, start_ms: int, ctx: Context) -> tuple[str, str]:
        return (
            f"Refund requests at {j.observed / j.expected:.1f}x the usual rate at {where}",
            f"{window_text(j, start_ms, ctx.window_ms)} (event time): {j.numerator:.0f} refund"
            f" requests for {j.denominator:.0f} paid orders ({pct(j.observed)}) against a"
            f" baseline of {pct(j.expected)}; one-sided exact p = {j.p_value:.2g} (level"
            f" {j.level:.2g}).",
        )
