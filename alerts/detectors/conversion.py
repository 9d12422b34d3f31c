"""ConversionDrop: a funnel step converts far worse than usual."""

from __future__ import annotations

from typing import ClassVar

from alerts.detectors.base import FUNNEL, Context, Judgement, Sample, WindowView, pct, window_text
from alerts.detectors.ratio import RatioDetector
from alerts.thresholds import HysteresisRule, Stage, Thresholds

__all__ = ["ConversionDrop"]


class ConversionDrop(RatioDetector):
    """Step conversion into `stage` (stage / previous stage, e.g. orders per cart) of a
    store x channel at least `min_relative_drop` (30%) below its baseline and significantly
    so (Fisher's exact test, lower tail) over the last window or, for a series with fewer
    than `pool_volume` previous-stage events per window, over up to `pooling.max_windows`
    windows. Critical for the money stages (`critical_stages`: order, pay) or a drop of
    `critical_relative_drop` (60%), else a warning. A window whose previous stage steps
    sharply (funnel lag in a rush) is not judged."""

    alertname: ClassVar[str] = "ConversionDrop"
    higher = False

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.previous = FUNNEL[FUNNEL.index(stage) - 1]

    def labels(self) -> dict[str, str]:
        return {"stage": self.stage}

    def hysteresis(self, t: Thresholds) -> HysteresisRule:
        return t.conversion.hysteresis

    def counts(self, view: WindowView) -> Sample:
        return Sample(view.counts.get(self.stage, 0), view.counts.get(self.previous, 0))

    def reference(self, ctx: Context) -> float | None:
        return None if ctx.reference is None else ctx.reference.conversion.get(self.stage)

    def volume(self, t: Thresholds) -> float:
        return t.conversion.pool_volume

    def effect(self, rate: float, expected: float, t: Thresholds) -> bool:
        return 1.0 - rate / expected >= t.conversion.min_relative_drop

    def severity(self, rate: float, expected: float, t: Thresholds) -> str:
        rule = t.conversion
        deep = 1.0 - rate / expected >= rule.critical_relative_drop
        return "critical" if self.stage in rule.critical_stages or deep else "warning"

    def describe(self, j: Judgement, where: str, start_ms: int, ctx: Context) -> tuple[str, str]:
        drop = 1.0 - j.observed / j.expected
        return (
            f"Conversion into {self.stage} down {pct(drop)} on {where}",
            f"{window_text(j, start_ms, ctx.window_ms)} (event time): {self.stage}/"
            f"{self.previous} = {j.numerator:.0f}/{j.denominator:.0f} = {pct(j.observed)} against"
            f" a baseline of {pct(j.expected)}; one-sided exact p = {j.p_value:.2g} (level"
            f" {j.level:.2g}).",
        )
