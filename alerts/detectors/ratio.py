"""The shape the three ratio detectors share: a rate of successes per trial, pooled over
the spans of alerts.detectors.base, tested against the baseline's counts (Fisher's exact
test) or a reference rate (binomial), one-sided."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import replace

from alerts.detectors.base import (
    Context,
    Judgement,
    Sample,
    Track,
    WindowDetector,
    WindowView,
    basis_rate,
    spans,
)
from alerts.significance import proportion_p_value
from alerts.thresholds import Thresholds

__all__ = ["RatioDetector"]


class RatioDetector(WindowDetector):
    higher: bool  # the alert is about a rate going up (failures, refunds) or down

    @abstractmethod
    def counts(self, view: WindowView) -> Sample:
        """(successes, trials) of the window."""

    @abstractmethod
    def reference(self, ctx: Context) -> float | None:
        """The calendar's cold-start rate, if any."""

    @abstractmethod
    def volume(self, t: Thresholds) -> float:
        """The rule's `pool_volume`."""

    @abstractmethod
    def effect(self, rate: float, expected: float, t: Thresholds) -> bool:
        """Whether the rate is far enough from the baseline to matter."""

    def severity(self, rate: float, expected: float, t: Thresholds) -> str:
        return "critical"

    def window_level(self, ctx: Context) -> float:
        """The series' significance level of one window: the paging budget's, unless the
        alert can only ever be a warning."""
        return ctx.level

    def sample(self, view: WindowView, track: Track, ctx: Context) -> Sample | None:
        return self.counts(view)

    def learnt(self, view: WindowView, ctx: Context) -> Sample:
        return self.counts(view)

    def guarded(self, view: WindowView) -> float | None:
        return self.counts(view).denominator

    def judge(self, track: Track, ctx: Context) -> Judgement | None:
        t = ctx.thresholds
        basis = track.basis(t, self.reference(ctx), ctx.priors.get(self.alertname))
        if basis is None:
            return None
        expected = basis_rate(basis)
        pooled = spans(track.pool, self.volume(t), t.pooling.max_windows)
        level = self.window_level(ctx) / len(pooled)
        judged = []
        for span, (x, n) in enumerate(pooled, 1):
            if n <= 0:
                continue
            rate = x / n
            p_value = proportion_p_value(round(x), round(n), basis, higher=self.higher)
            # the effect without the evidence is undecided (an outage in a quiet minute
            # neither fires nor counts towards resolving); without the effect, clean
            breach = (p_value < level or None) if self.effect(rate, expected, t) else False
            severity = self.severity(rate, expected, t)
            judged.append(Judgement(breach, rate, expected, x, n, span, p_value, level, severity))
        if not judged:
            return Judgement(None, 0.0, expected, level=level)  # no trials: cannot tell
        breaches = [j for j in judged if j.breach]
        if breaches:
            return min(breaches, key=lambda j: j.p_value)
        if any(j.breach is None for j in judged):
            return replace(judged[-1], breach=None)
        return judged[-1]
