"""TrafficDrop: a store x channel's clicks fall far below what is expected now."""

from __future__ import annotations

from typing import ClassVar

from alerts.detectors.base import (
    Context,
    Judgement,
    Sample,
    Track,
    WindowDetector,
    WindowView,
    pct,
    spans,
    window_text,
)
from alerts.significance import poisson_cdf
from alerts.thresholds import HysteresisRule, Thresholds

__all__ = ["TrafficDrop"]


class TrafficDrop(WindowDetector):
    """Clicks of a store x channel at least `min_relative_drop` (80%) below the expected
    count and significantly so (Poisson lower tail). Expected = the median of the last
    clean windows in normal-traffic units (clicks / the calendar's multiplier) x the
    window's multiplier, so a scheduled x20 peak and its end re-base by themselves. A
    channel expecting fewer than `pool_volume` clicks per window is also judged over up to
    `pooling.max_windows` windows: 40 clicks a minute falling to none fires; 2 a minute
    falling to none is not evidence of anything."""

    alertname: ClassVar[str] = "TrafficDrop"

    def hysteresis(self, t: Thresholds) -> HysteresisRule:
        return t.traffic.hysteresis

    def sample(self, view: WindowView, track: Track, ctx: Context) -> Sample | None:
        t = ctx.thresholds
        level: float | None = None
        if track.baseline.windows >= t.baseline.min_windows:
            level = track.baseline.median_level()
        elif ctx.reference is not None and ctx.reference.clicks_per_minute is not None:
            level = ctx.reference.clicks_per_minute * ctx.window_ms / 60_000
        if level is None:
            return None
        return Sample(view.counts.get("click", 0), level * ctx.multiplier)

    def learnt(self, view: WindowView, ctx: Context) -> Sample:
        return Sample(view.counts.get("click", 0) / ctx.multiplier, 1.0)

    def guarded(self, view: WindowView) -> float | None:
        return None  # a step in clicks is what this detector is about

    def judge(self, track: Track, ctx: Context) -> Judgement | None:
        rule = ctx.thresholds.traffic
        pooled = spans(track.pool, rule.pool_volume, ctx.thresholds.pooling.max_windows)
        level = ctx.level / len(pooled)
        found: Judgement | None = None
        for span, (clicks, expected) in enumerate(pooled, 1):
            if expected <= 0:
                continue
            p_value = poisson_cdf(round(clicks), expected)
            dropped = clicks <= (1.0 - rule.min_relative_drop) * expected
            found = Judgement(dropped and p_value < level, clicks, expected, clicks, expected,
                              span, p_value, level)  # fmt: skip
            if found.breach:
                break
        return found

    def describe(self, j: Judgement, where: str, start_ms: int, ctx: Context) -> tuple[str, str]:
        drop = 1.0 - j.observed / j.expected
        return (
            f"Clicks down {pct(drop)} on {where}",
            f"{window_text(j, start_ms, ctx.window_ms)} (event time): {j.observed:.0f} clicks"
            f" against {j.expected:.0f} expected (traffic multiplier {ctx.multiplier:g});"
            f" Poisson p = {j.p_value:.2g} (level {j.level:.2g}).",
        )
