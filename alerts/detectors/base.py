"""What every window detector shares: the window it reads, the signal it emits, the calendar
context, the judgement, the track (one series' state) and the `WindowDetector` ABC.

A series is an alert name with its labels (ConversionDrop{store, channel, stage="order"});
its `Track` keeps the baseline, the hysteresis, the step guard and the pool of the last
windows' samples. A detector turns a window into a sample and judges the pool: the last
window alone and, for a series short of its rule's `pool_volume`, the last 2, 3, ... up to
`pooling.max_windows` windows together; each span is one one-sided test at its share of
the window's level (Bonferroni over spans), and the series breaches if any span shows both
the effect and significance. That is how a channel of 20 carts a minute is judged over five
minutes and one of 2,000 over one, without any volume floor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from alerts.baseline import PRIOR_SUCCESSES, PRIOR_TRIALS, Baseline
from alerts.campaign import Reference
from alerts.clock import iso_ms
from alerts.fleet import Prior
from alerts.hysteresis import Change, Hysteresis
from alerts.significance import per_test_alpha
from alerts.thresholds import HysteresisRule, Thresholds, Transition

__all__ = [
    "FUNNEL",
    "Context",
    "Judgement",
    "Sample",
    "Signal",
    "Track",
    "TrackKey",
    "WindowDetector",
    "WindowView",
    "basis_rate",
    "pct",
    "spans",
    "window_text",
]

FUNNEL = ("impression", "click", "cart", "order", "pay")
STEP_PSEUDO_COUNT = 5.0  # keeps the step guard quiet on tiny volumes (3 -> 14 is noise)


@dataclass(frozen=True)
class WindowView:
    """The parts of a final window (streams.merge.window_record) the detectors read; for
    store-wide detectors the sum of the store's channels (`channel` "")."""

    store_id: str
    channel: str
    start_ms: int
    end_ms: int
    counts: Mapping[str, int]
    paid_orders: int = 0
    payment_failed: int = 0
    refund_requested: int = 0
    complaints: int = 0

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> WindowView:
        return cls(
            record["store_id"],
            record["channel"],
            record["window_start"],
            record["window_end"],
            record["counts"],
            record["paid_orders"],
            record["payment_failed"],
            record["refund_requested"],
            record.get("complaints", 0),  # absent from windows recorded before it was
        )

    @classmethod
    def empty(cls, store_id: str, channel: str, start_ms: int, end_ms: int) -> WindowView:
        """A window in which the key had no event at all."""
        return cls(store_id, channel, start_ms, end_ms, dict.fromkeys(FUNNEL, 0))

    @property
    def attempts(self) -> int:
        return self.paid_orders + self.payment_failed

    @property
    def has_events(self) -> bool:
        return any(self.counts.values()) or bool(
            self.paid_orders or self.payment_failed or self.refund_requested or self.complaints
        )


@dataclass(frozen=True, kw_only=True)
class Signal:
    """A detector's wish: this alert should be firing (again), or be resolved."""

    alertname: str
    labels: Mapping[str, str]  # the alert's own labels (store_id, channel, stage, sku)
    firing: bool
    event_ms: int  # event time: when the condition started (firing) or cleared (resolved)
    severity: str = "critical"
    summary: str = ""
    description: str = ""
    details: Mapping[str, str] = field(default_factory=dict)
    resolve_hold_s: float = 0.0  # resolve only if nothing fires again for this long


@dataclass(frozen=True)
class Context:
    """What the calendar says about one key's window."""

    thresholds: Thresholds
    window_ms: int
    multiplier: float = 1.0  # expected traffic against normal
    boundary: bool = False  # near a scheduled phase boundary: not judged
    learn: bool = True  # baselines may learn from this window (phase `baseline: follow`)
    reference: Reference | None = None
    priors: Mapping[str, Prior] = field(default_factory=dict)  # per alert: the fleet's

    @property
    def level(self) -> float:
        """One window's significance level for one series that may page: its `alpha`
        spread over the windows of `horizon_s`. The union bound over every test holds
        whatever the correlation between overlapping spans and windows; hysteresis only
        adds margin."""
        return self._window_level(self.thresholds.significance.alpha)

    @property
    def warning_level(self) -> float:
        """As `level`, for a warning-only series: `warning_alpha` over the horizon."""
        return self._window_level(self.thresholds.significance.warning_alpha)

    def _window_level(self, alpha: float) -> float:
        s = self.thresholds.significance
        windows = max(1, round(s.horizon_s * 1000 / self.window_ms))
        return per_test_alpha(alpha, windows, 1, 1)


class TrackKey(NamedTuple):
    """A series: the alert name and its labels (sorted), as the alert will carry them."""

    alertname: str
    labels: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, alertname: str, labels: Mapping[str, str]) -> TrackKey:
        return cls(alertname, tuple(sorted(labels.items())))


class Sample(NamedTuple):
    """One window of a series: successes and trials (ratios), or clicks and the clicks
    expected (traffic)."""

    numerator: float
    denominator: float


@dataclass(frozen=True)
class Judgement:
    """The verdict on one window, with the span that decided it."""

    breach: bool | None  # None: cannot tell (the effect is there, the evidence is not)
    observed: float  # rate (ratios) or count (traffic) over the span
    expected: float
    numerator: float = 0.0
    denominator: float = 0.0
    span: int = 1  # windows pooled
    p_value: float = 1.0
    level: float = 1.0  # the span's significance level
    severity: str = "critical"


@dataclass
class Track:
    """One series' state: baseline, hysteresis, step guard and the recent samples."""

    baseline: Baseline = field(default_factory=Baseline)
    hysteresis: Hysteresis = field(default_factory=Hysteresis)
    pool: list[Sample] = field(default_factory=list)  # consecutive judged windows, newest last
    # what the last windows would teach the baseline (None: nothing), learnt as they leave
    unlearnt: list[Sample | None] = field(default_factory=list)
    previous_volume: float | None = None
    settle_left: int = 0

    def settling(self, volume: float, rule: Transition) -> bool:
        """True while the denominator just stepped (and for the settle windows after)."""
        previous, self.previous_volume = self.previous_volume, volume
        if previous is not None:
            high, low = max(previous, volume), min(previous, volume)
            if (high + STEP_PSEUDO_COUNT) / (low + STEP_PSEUDO_COUNT) >= rule.step_ratio:
                self.settle_left = rule.settle_windows
                return True
        if self.settle_left > 0:
            self.settle_left -= 1
            return True
        return False

    def basis(
        self, t: Thresholds, reference: float | None, prior: Prior | None = None
    ) -> tuple[int, int] | float | None:
        """What a rate is tested against: the baseline's counts once it has `min_windows`
        (with the fleet's prior's pseudo-counts added, if any), else the reference
        profile's rate, else nothing (no judgement)."""
        if self.baseline.windows >= t.baseline.min_windows and self.baseline.volume > 0:
            successes, trials = self.baseline.counts()
            if prior is None:
                return successes, trials
            return round(successes + prior.successes), round(trials + prior.trials)
        return reference

    def learn(self, sample: Sample | None, clean: bool, t: Thresholds) -> None:
        """A window joins the baseline once it left the pool without any breach or alert
        meanwhile: an incident's first, not yet significant windows are never learnt as
        normal. Undecided windows are learnt too: leaving out only the low ones would bias
        the baseline up."""
        if not clean:
            self.unlearnt.clear()
            return
        self.unlearnt.append(sample)
        while len(self.unlearnt) > t.pooling.max_windows:
            oldest = self.unlearnt.pop(0)
            if oldest is not None:
                self.baseline.add(*oldest, t.baseline.windows)

    def to_json(self) -> dict[str, Any]:
        return {
            "b": self.baseline.to_json(),
            "h": self.hysteresis.to_json(),
            "p": [list(sample) for sample in self.pool],
            "u": [None if sample is None else list(sample) for sample in self.unlearnt],
            "v": self.previous_volume,
            "s": self.settle_left,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Track:
        pool = [Sample(*sample) for sample in data["p"]]
        unlearnt = [None if sample is None else Sample(*sample) for sample in data["u"]]
        return cls(
            Baseline.from_json(data["b"]), Hysteresis.from_json(data["h"]), pool, unlearnt,
            data["v"], data["s"],
        )  # fmt: skip


def basis_rate(basis: tuple[int, int] | float) -> float:
    """The expected rate of a test basis (baseline counts, smoothed, or a known rate)."""
    if isinstance(basis, tuple):
        successes, trials = basis
        return (successes + PRIOR_SUCCESSES) / (trials + PRIOR_TRIALS)
    return basis


def spans(pool: Sequence[Sample], volume: float, max_windows: int) -> list[Sample]:
    """Pooled samples of the last 1, 2, ... windows, up to the first span whose denominator
    reaches `volume` (at most `max_windows`)."""
    pooled: list[Sample] = []
    numerator = denominator = 0.0
    for sample in reversed(pool[-max_windows:]):
        numerator += sample.numerator
        denominator += sample.denominator
        pooled.append(Sample(numerator, denominator))
        if denominator >= volume:
            break
    return pooled


def pct(ratio: float) -> str:
    return f"{ratio:.1%}"


def window_text(j: Judgement, start_ms: int, window_ms: int) -> str:
    """The judged span in event time: `window <start> + 60 s` or `3 windows to ...`."""
    if j.span == 1:
        return f"window {iso_ms(start_ms)} + {window_ms // 1000} s"
    first = start_ms - (j.span - 1) * window_ms
    return f"{j.span} windows {iso_ms(first)} to {iso_ms(start_ms + window_ms)}"


class WindowDetector(ABC):
    """One alert on closed windows: how a window becomes a sample of the series, how the
    pool of samples is judged and how a breach is told to on-call. `observe` runs the common
    part: step guard, hysteresis, learning and the signal."""

    alertname: ClassVar[str]

    def labels(self) -> dict[str, str]:
        """Labels beyond the key's (store_id, channel)."""
        return {}

    @abstractmethod
    def hysteresis(self, t: Thresholds) -> HysteresisRule: ...

    @abstractmethod
    def sample(self, view: WindowView, track: Track, ctx: Context) -> Sample | None:
        """The window's sample for the pool; None while there is nothing to test against."""

    @abstractmethod
    def learnt(self, view: WindowView, ctx: Context) -> Sample:
        """What the window teaches the baseline when it is normal."""

    @abstractmethod
    def guarded(self, view: WindowView) -> float | None:
        """The denominator the step guard watches (None: no guard, e.g. traffic)."""

    @abstractmethod
    def judge(self, track: Track, ctx: Context) -> Judgement | None:
        """The verdict on the pool's spans; None: nothing to judge yet."""

    @abstractmethod
    def describe(self, j: Judgement, where: str, start_ms: int, ctx: Context) -> tuple[str, str]:
        """(summary, description) of a firing alert."""

    def observe(
        self, track: Track, view: WindowView, ctx: Context, key_labels: Mapping[str, str]
    ) -> Signal | None:
        """Judge one window of the series: FIRE (or a breach while firing, which may
        escalate) gives a firing signal, RESOLVE a resolved one."""
        guarded = self.guarded(view)
        stepped = guarded is not None and track.settling(guarded, ctx.thresholds.transition)
        if stepped or ctx.boundary:
            track.pool.clear()  # pools hold consecutive windows of one regime
            return None
        labels = {**key_labels, **self.labels()}
        sample = self.sample(view, track, ctx)
        judgement = None
        if sample is not None:
            track.pool.append(sample)
            del track.pool[: -ctx.thresholds.pooling.max_windows]
            judgement = self.judge(track, ctx)
        breach = False if judgement is None else judgement.breach  # no baseline yet: clean
        change = track.hysteresis.update(view.start_ms, breach, self.hysteresis(ctx.thresholds))
        learnt = self.learnt(view, ctx)
        taught = learnt if ctx.learn and learnt.denominator > 0 else None
        track.learn(taught, breach is not True and not track.hysteresis.firing, ctx.thresholds)
        if change is Change.RESOLVE:
            return Signal(alertname=self.alertname, labels=labels, firing=False,
                          event_ms=view.start_ms)  # fmt: skip
        if judgement is None or not judgement.breach or not track.hysteresis.firing:
            return None
        where = " / ".join(v for v in (key_labels.get("store_id"), key_labels.get("channel")) if v)
        summary, description = self.describe(judgement, where, view.start_ms, ctx)
        since = track.hysteresis.since_ms
        return Signal(
            alertname=self.alertname,
            labels=labels,
            firing=True,
            event_ms=since if since is not None else view.start_ms,
            severity=judgement.severity,
            summary=summary,
            description=description,
            details={
                "observed": f"{judgement.observed:.6g}",
                "baseline": f"{judgement.expected:.6g}",
                "p_value": f"{judgement.p_value:.3g}",
                "windows": str(judgement.span),
            },
        )
