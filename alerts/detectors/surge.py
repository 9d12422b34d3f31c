"""What RefundSurge and ComplaintSurge share: a store's after-sales events per paid order
(its channels summed: a bad batch of goods is not a channel's problem) at least
`baseline_factor` x the baseline and significantly so (Fisher's exact test, upper tail),
over the last window or, with fewer than `pool_volume` paid orders per window, over up to
`pooling.max_windows` windows. Warnings: costly, not an outage; so judged on the warning
budget (`significance.warning_alpha`), which pages a wave sooner than the paging one."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from alerts.detectors.base import Context, Judgement, Sample, WindowView, pct, window_text
from alerts.detectors.ratio import RatioDetector
from alerts.thresholds import HysteresisRule, SurgeRule, Thresholds

__all__ = ["PaidOrderSurge"]


class PaidOrderSurge(RatioDetector):
    higher = True
    what: ClassVar[str]  # the events counted, in a sentence: "refund requests"

    @abstractmethod
    def rule(self, t: Thresholds) -> SurgeRule: ...

    @abstractmethod
    def events(self, view: WindowView) -> int:
        """The window's after-sales events of the kind."""

    def hysteresis(self, t: Thresholds) -> HysteresisRule:
        return self.rule(t).hysteresis

    def counts(self, view: WindowView) -> Sample:
        return Sample(self.events(view), view.paid_orders)

    def volume(self, t: Thresholds) -> float:
        return self.rule(t).pool_volume

    def effect(self, rate: float, expected: float, t: Thresholds) -> bool:
        return rate >= self.rule(t).baseline_factor * expected

    def severity(self, rate: float, expected: float, t: Thresholds) -> str:
        return "warning"

    def window_level(self, ctx: Context) -> float:
        return ctx.warning_level  # never pages: judged on the warning budget

    def describe(self, j: Judgement, where: str, start_ms: int, ctx: Context) -> tuple[str, str]:
        return (
            f"{self.what.capitalize()} at {j.observed / j.expected:.1f}x the usual rate at {where}",
            f"{window_text(j, start_ms, ctx.window_ms)} (event time): {j.numerator:.0f}"
            f" {self.what} for {j.denominator:.0f} paid orders ({pct(j.observed)}) against a"
            f" baseline of {pct(j.expected)}; one-sided exact p = {j.p_value:.2g} (level"
            f" {j.level:.2g}).",
        )
