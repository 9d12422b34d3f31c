"""PaymentFailureSpike: payment attempts of a channel fail far more often than usual."""

from __future__ import annotations

from typing import ClassVar

from alerts.detectors.base import Context, Judgement, Sample, WindowView, pct, window_text
from alerts.detectors.ratio import RatioDetector
from alerts.thresholds import HysteresisRule, Thresholds

__all__ = ["PaymentFailureSpike"]


class PaymentFailureSpike(RatioDetector):
    """Failed / (paid + failed) of a store x channel at least max(`min_rate` (10%),
    `baseline_factor` (3) x baseline) and significantly above the baseline (Fisher's exact
    test, upper tail), over the last window or, with fewer than `pool_volume` attempts per
    window, over up to `pooling.max_windows` windows. Always critical: money is lost. No step
    guard: failures and successes are outcomes of the same attempts, with no funnel lag
    between them, and an outage's retries multiply the attempts themselves (a guard would
    skip the outage's first windows)."""

    alertname: ClassVar[str] = "PaymentFailureSpike"
    higher = True

    def hysteresis(self, t: Thresholds) -> HysteresisRule:
        return t.payment_failure.hysteresis

    def counts(self, view: WindowView) -> Sample:
        return Sample(view.payment_failed, view.attempts)

    def guarded(self, view: WindowView) -> float | None:
        return None

    def reference(self, ctx: Context) -> float | None:
        return None if ctx.reference is None else ctx.reference.payment_failure_rate

    def volume(self, t: Thresholds) -> float:
        return t.payment_failure.pool_volume

    def effect(self, rate: float, expected: float, t: Thresholds) -> bool:
        rule = t.payment_failure
        return rate >= max(rule.min_rate, rule.baseline_factor * expected)

    def describe(self, j: Judgement, where: str, start_ms: int, ctx: Context) -> tuple[str, str]:
        return (
            f"Payment failures at {pct(j.observed)} on {where}",
            f"{window_text(j, start_ms, ctx.window_ms)} (event time): {j.numerator:.0f} of"
            f" {j.denominator:.0f} payment attempts failed ({pct(j.observed)}) against a"
            f" baseline of {pct(j.expected)}; one-sided exact p = {j.p_value:.2g} (level"
            f" {j.level:.2g}).",
        )
