"""The business detectors (CONTRACT.md §5): from closed windows and stock statuses to
alert signals. Pure logic; the Faust wiring is alerts/stage.py, the per-partition
bookkeeping (zero windows, store totals) alerts/evaluation.py.

Window detectors, per store x channel (`ChannelDetector`) or per store (`StoreDetector`),
judge each closed window against the key's baseline (alerts/baseline.py) with a one-sided
exact test (alerts/significance.py) plus a minimum volume and a minimum effect size, and
fire or resolve through k-of-n hysteresis (alerts/hysteresis.py):

- ConversionDrop: step conversion into a stage (stage / previous stage) at least
  `min_relative_drop` below the baseline rate, binomial lower tail significant;
- PaymentFailureSpike: failed / (paid + failed) >= max(`min_rate`, factor x baseline);
- RefundSurge (store): refunds / paid orders over the last `span_windows` windows >=
  factor x baseline;
- TrafficDrop: clicks at least `min_relative_drop` below the expected level (median of
  recent windows in normal-traffic units x the calendar's multiplier), Poisson lower tail.

Ratios, not counts, drive the first three, so a surge of traffic changes nothing; a window
whose denominator steps sharply (funnel lag) or that touches a scheduled phase boundary is
not judged. Baselines learn only from windows that did not breach, while no alert of that
kind is firing for the key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.baseline import PRIOR_SUCCESSES, PRIOR_TRIALS, Baseline
from alerts.campaign import Reference
from alerts.clock import iso_ms
from alerts.hysteresis import Change, Hysteresis
from alerts.significance import per_test_alpha, poisson_cdf, proportion_p_value
from alerts.thresholds import HysteresisRule, Thresholds, Transition
from streams.inventory import Status, StockStatus

__all__ = [
    "FUNNEL",
    "ChannelDetector",
    "Context",
    "Signal",
    "StoreDetector",
    "WindowView",
    "stock_signals",
]

FUNNEL = ("impression", "click", "cart", "order", "pay")
STEP_PSEUDO_COUNT = 5.0  # keeps the step guard quiet on tiny volumes (3 -> 14 is noise)


@dataclass(frozen=True)
class WindowView:
    """The parts of a final window (streams.merge.window_record) the detectors read."""

    store_id: str
    channel: str
    start_ms: int
    end_ms: int
    counts: Mapping[str, int]
    paid_orders: int = 0
    payment_failed: int = 0
    refund_requested: int = 0

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
            self.paid_orders or self.payment_failed or self.refund_requested
        )


@dataclass(frozen=True)
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

    def alpha(self, tests_per_window: int, rule: HysteresisRule) -> float:
        s = self.thresholds.significance
        windows = max(1, round(s.horizon_s * 1000 / self.window_ms))
        return per_test_alpha(s.alpha, windows * tests_per_window, rule.fire_k, rule.fire_n)


@dataclass(frozen=True)
class Judgement:
    breach: bool | None  # None: cannot tell (too little volume, yet the effect is there)
    observed: float
    expected: float
    p_value: float = 1.0
    severity: str = "critical"


Judge = Callable[[float], Judgement]  # expected (baseline) -> judgement


def verdict(volume: bool, effect: bool, significant: bool) -> bool | None:
    """Breach only with enough volume, the effect and significance. Too little volume
    with the effect there is undecided (it neither fires nor counts towards resolving, so
    an outage in a quiet minute does not resolve and re-fire); without it, clean."""
    if volume:
        return effect and significant
    return None if effect else False


@dataclass
class Track:
    """One watched quantity of one key: its baseline, hysteresis and step guard."""

    baseline: Baseline = field(default_factory=Baseline)
    hysteresis: Hysteresis = field(default_factory=Hysteresis)
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

    def basis(self, t: Thresholds, reference: float | None) -> tuple[int, int] | float | None:
        """What a window's rate is tested against: the baseline's counts once it has
        `min_windows`, else the reference profile's rate, else nothing (no judgement)."""
        if self.baseline.windows >= t.baseline.min_windows and self.baseline.volume > 0:
            return self.baseline.counts()
        return reference

    def step(
        self,
        start_ms: int,
        numerator: float,
        denominator: float,
        expected: float | None,
        judge: Judge,
        ctx: Context,
        rule: HysteresisRule,
        skip: bool,
    ) -> tuple[Change | None, Judgement | None]:
        if skip:
            return None, None
        judgement = judge(expected) if expected is not None else None
        breach = False if judgement is None else judgement.breach  # no baseline yet: clean
        change = self.hysteresis.update(start_ms, breach, rule)
        # undecided windows are learnt too: leaving out only the low ones would bias it up
        if breach is not True and not self.hysteresis.firing and ctx.learn and denominator > 0:
            self.baseline.add(numerator, denominator, ctx.thresholds.baseline.windows)
        return change, judgement

    def to_json(self) -> dict[str, Any]:
        return {
            "b": self.baseline.to_json(),
            "h": self.hysteresis.to_json(),
            "v": self.previous_volume,
            "s": self.settle_left,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Track:
        return cls(
            Baseline.from_json(data["b"]), Hysteresis.from_json(data["h"]), data["v"], data["s"]
        )


def basis_rate(basis: tuple[int, int] | float | None) -> float | None:
    """The expected rate of a test basis (baseline counts, smoothed, or a known rate)."""
    if isinstance(basis, tuple):
        successes, trials = basis
        return (successes + PRIOR_SUCCESSES) / (trials + PRIOR_TRIALS)
    return basis


def _pct(ratio: float) -> str:
    return f"{ratio:.1%}"


def _window_text(view_start: int, window_ms: int) -> str:
    return f"window {iso_ms(view_start)} + {window_ms // 1000} s"


def _signal(
    change: Change | None,
    track: Track,
    alertname: str,
    labels: dict[str, str],
    judgement: Judgement | None,
    event_ms: int,
    text: Callable[[Judgement], tuple[str, str]],
) -> Signal | None:
    """FIRE (or a breach while firing: may escalate) -> firing signal; RESOLVE -> resolved."""
    if change is Change.RESOLVE:
        return Signal(alertname, labels, False, event_ms)
    if judgement is None or not judgement.breach or not track.hysteresis.firing:
        return None
    summary, description = text(judgement)
    since = track.hysteresis.since_ms
    return Signal(
        alertname,
        labels,
        True,
        since if since is not None else event_ms,
        judgement.severity,
        summary,
        description,
        {"observed": f"{judgement.observed:.6g}", "baseline": f"{judgement.expected:.6g}",
         "p_value": f"{judgement.p_value:.3g}"},
    )  # fmt: skip


def _track_alert(name: str) -> tuple[str, dict[str, str]]:
    """Alert name and extra labels of a track key."""
    if name.startswith("conversion:"):
        return "ConversionDrop", {"stage": name.split(":", 1)[1]}
    if name == "payment_failure":
        return "PaymentFailureSpike", {}
    if name == "traffic":
        return "TrafficDrop", {}
    if name == "refund":
        return "RefundSurge", {}
    raise KeyError(name)


@dataclass
class _Detector:
    tracks: dict[str, Track] = field(default_factory=dict)
    next_start: int | None = None  # next window to judge
    last_active_ms: int | None = None  # start of the last window with events

    def labels(self) -> dict[str, str]:
        raise NotImplementedError

    def track(self, name: str) -> Track:
        found = self.tracks.get(name)
        if found is None:
            found = self.tracks[name] = Track()
        return found

    def resolve_all(self, event_ms: int) -> list[Signal]:
        """Resolutions of every firing alert of the key (the key is being forgotten)."""
        signals = []
        for name, track in self.tracks.items():
            if track.hysteresis.firing:
                alertname, extra = _track_alert(name)
                signals.append(Signal(alertname, {**self.labels(), **extra}, False, event_ms))
        return signals

    def base_json(self) -> dict[str, Any]:
        return {
            "tracks": {name: track.to_json() for name, track in self.tracks.items()},
            "next": self.next_start,
            "active": self.last_active_ms,
        }

    def load_base(self, data: dict[str, Any]) -> None:
        self.tracks = {name: Track.from_json(raw) for name, raw in data["tracks"].items()}
        self.next_start = data["next"]
        self.last_active_ms = data["active"]


@dataclass
class ChannelDetector(_Detector):
    store_id: str = ""
    channel: str = ""

    def labels(self) -> dict[str, str]:
        return {"store_id": self.store_id, "channel": self.channel}

    def evaluate(self, view: WindowView, ctx: Context) -> list[Signal]:
        if view.has_events:
            self.last_active_ms = view.start_ms
        signals = [*self._conversion(view, ctx), self._payment(view, ctx), self._traffic(view, ctx)]
        return [s for s in signals if s is not None]

    def _conversion(self, view: WindowView, ctx: Context) -> list[Signal | None]:
        rule = ctx.thresholds.conversion
        alpha = ctx.alpha(len(rule.stages), rule.hysteresis)
        where = f"{self.store_id} / {self.channel}"
        signals: list[Signal | None] = []
        for stage in rule.stages:
            previous = FUNNEL[FUNNEL.index(stage) - 1]
            x, n = view.counts.get(stage, 0), view.counts.get(previous, 0)

            track = self.track(f"conversion:{stage}")
            reference = ctx.reference.conversion.get(stage) if ctx.reference else None
            basis = track.basis(ctx.thresholds, reference)

            def judge(p0: float, x: int = x, n: int = n, stage: str = stage,
                      basis: tuple[int, int] | float | None = basis) -> Judgement:  # fmt: skip
                if n == 0 or basis is None:
                    return Judgement(None, 0.0, p0)
                rate = x / n
                drop = 1.0 - rate / p0
                p_value = proportion_p_value(x, n, basis, higher=False)
                critical = stage in rule.critical_stages or drop >= rule.critical_relative_drop
                breach = verdict(n >= rule.min_volume, drop >= rule.min_relative_drop,
                                 p_value < alpha)  # fmt: skip
                return Judgement(breach, rate, p0, p_value, "critical" if critical else "warning")

            def text(j: Judgement, x: int = x, n: int = n, stage: str = stage) -> tuple[str, str]:
                prev = FUNNEL[FUNNEL.index(stage) - 1]
                drop = 1.0 - j.observed / j.expected
                return (
                    f"Conversion into {stage} down {_pct(drop)} on {where}",
                    f"{_window_text(view.start_ms, ctx.window_ms)} (event time): {stage}/{prev}"
                    f" = {x}/{n} = {_pct(j.observed)} against a baseline of {_pct(j.expected)};"
                    f" one-sided exact p = {j.p_value:.2g} (alpha per window {alpha:.2g}).",
                )

            skip = track.settling(n, ctx.thresholds.transition) or ctx.boundary
            expected = basis_rate(basis)
            change, judgement = track.step(
                view.start_ms, x, n, expected, judge, ctx, rule.hysteresis, skip
            )
            labels = {**self.labels(), "stage": stage}
            signals.append(
                _signal(change, track, "ConversionDrop", labels, judgement, view.start_ms, text)
            )
        return signals

    def _payment(self, view: WindowView, ctx: Context) -> Signal | None:
        rule = ctx.thresholds.payment_failure
        alpha = ctx.alpha(1, rule.hysteresis)
        x, n = view.payment_failed, view.attempts
        track = self.track("payment_failure")
        reference = ctx.reference.payment_failure_rate if ctx.reference else None
        basis = track.basis(ctx.thresholds, reference)

        def judge(p0: float) -> Judgement:
            if n == 0 or basis is None:
                return Judgement(None, 0.0, p0)
            rate = x / n
            p_value = proportion_p_value(x, n, basis, higher=True)
            limit = max(rule.min_rate, rule.baseline_factor * p0)
            return Judgement(
                verdict(n >= rule.min_attempts, rate >= limit, p_value < alpha), rate, p0, p_value
            )

        def text(j: Judgement) -> tuple[str, str]:
            return (
                f"Payment failures at {_pct(j.observed)} on {self.store_id} / {self.channel}",
                f"{_window_text(view.start_ms, ctx.window_ms)} (event time): {x} of {n} payment"
                f" attempts failed ({_pct(j.observed)}) against a baseline of {_pct(j.expected)};"
                f" one-sided exact p = {j.p_value:.2g} (alpha per window {alpha:.2g}).",
            )

        skip = track.settling(n, ctx.thresholds.transition) or ctx.boundary
        expected = basis_rate(basis)
        change, judgement = track.step(
            view.start_ms, x, n, expected, judge, ctx, rule.hysteresis, skip
        )
        return _signal(
            change, track, "PaymentFailureSpike", self.labels(), judgement, view.start_ms, text
        )

    def _traffic(self, view: WindowView, ctx: Context) -> Signal | None:
        t = ctx.thresholds
        rule = t.traffic
        alpha = ctx.alpha(1, rule.hysteresis)
        clicks = view.counts.get("click", 0)
        track = self.track("traffic")
        level: float | None = None
        if track.baseline.windows >= t.baseline.min_windows:
            level = track.baseline.median_level()
        elif ctx.reference is not None and ctx.reference.clicks_per_minute is not None:
            level = ctx.reference.clicks_per_minute * ctx.window_ms / 60_000
        expected = None if level is None else level * ctx.multiplier

        def judge(e: float) -> Judgement:
            if e < rule.min_expected:
                return Judgement(False, clicks, e)  # too quiet to tell a stop from noise
            p_value = poisson_cdf(clicks, e)
            dropped = clicks <= (1.0 - rule.min_relative_drop) * e
            return Judgement(dropped and p_value < alpha, clicks, e, p_value)

        def text(j: Judgement) -> tuple[str, str]:
            drop = 1.0 - j.observed / j.expected
            return (
                f"Clicks down {_pct(drop)} on {self.store_id} / {self.channel}",
                f"{_window_text(view.start_ms, ctx.window_ms)} (event time): {clicks} clicks"
                f" against {j.expected:.0f} expected (traffic multiplier {ctx.multiplier:g});"
                f" Poisson p = {j.p_value:.2g} (alpha per window {alpha:.2g}).",
            )

        normalised = clicks / ctx.multiplier
        change, judgement = track.step(
            view.start_ms, normalised, 1.0, expected, judge, ctx, rule.hysteresis, ctx.boundary
        )
        return _signal(change, track, "TrafficDrop", self.labels(), judgement, view.start_ms, text)

    def to_json(self) -> dict[str, Any]:
        return {"store_id": self.store_id, "channel": self.channel, **self.base_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChannelDetector:
        detector = cls(store_id=data["store_id"], channel=data["channel"])
        detector.load_base(data)
        return detector


@dataclass
class StoreDetector(_Detector):
    """Store-wide detectors: RefundSurge over the store's channels."""

    store_id: str = ""
    trailing: list[tuple[int, int]] = field(default_factory=list)  # (refunds, paid) per window

    def labels(self) -> dict[str, str]:
        return {"store_id": self.store_id}

    def evaluate(self, start_ms: int, refunds: int, paid: int, ctx: Context) -> list[Signal]:
        rule = ctx.thresholds.refund
        alpha = ctx.alpha(1, rule.hysteresis)
        self.trailing.append((refunds, paid))
        # a window teaches the baseline only when it leaves the span: every judgement that
        # included it was made by then (a surge's first windows are not learnt as normal)
        leaving = self.trailing[: -rule.span_windows]
        del self.trailing[: -rule.span_windows]
        x = sum(r for r, _ in self.trailing)
        n = sum(p for _, p in self.trailing)
        span = len(self.trailing)
        track = self.track("refund")
        basis = track.basis(ctx.thresholds, ctx.reference.refund_rate if ctx.reference else None)

        def judge(p0: float) -> Judgement:
            if n == 0 or basis is None:
                return Judgement(None, 0.0, p0, severity="warning")
            rate = x / n
            p_value = proportion_p_value(x, n, basis, higher=True)
            volume = n >= rule.min_paid and x >= rule.min_refunds
            effect = rate >= rule.baseline_factor * p0
            return Judgement(verdict(volume, effect, p_value < alpha), rate, p0, p_value,
                             "warning")  # fmt: skip

        def text(j: Judgement) -> tuple[str, str]:
            return (
                f"Refund requests at {j.observed / j.expected:.1f}x the usual rate at"
                f" {self.store_id}",
                f"Last {span} windows up to {_window_text(start_ms, ctx.window_ms)} (event"
                f" time): {x} refund requests for {n} paid orders ({_pct(j.observed)}) against"
                f" a baseline of {_pct(j.expected)}; one-sided exact p = {j.p_value:.2g}"
                f" (alpha per window {alpha:.2g}).",
            )

        expected = basis_rate(basis)
        learnt = (sum(r for r, _ in leaving), sum(p for _, p in leaving))
        change, judgement = track.step(
            start_ms, *learnt, expected, judge, ctx, rule.hysteresis, ctx.boundary
        )
        signal = _signal(change, track, "RefundSurge", self.labels(), judgement, start_ms, text)
        return [] if signal is None else [signal]

    def to_json(self) -> dict[str, Any]:
        return {"store_id": self.store_id, "trailing": self.trailing, **self.base_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoreDetector:
        detector = cls(store_id=data["store_id"], trailing=[(r, p) for r, p in data["trailing"]])
        detector.load_base(data)
        return detector


def stock_signals(status: StockStatus, t: Thresholds) -> list[Signal]:
    """StockOut and LowStockSoon follow the inventory stage's status of the SKU."""
    labels = {"store_id": status.store_id, "sku": status.sku}
    where = f"{status.sku} at {status.store_id}"
    rule = t.stock
    out = Signal("StockOut", labels, False, status.ts, resolve_hold_s=rule.out_resolve_hold_s)
    low = Signal("LowStockSoon", labels, False, status.ts, resolve_hold_s=rule.low_resolve_hold_s)
    rate = f"{status.velocity_per_min:.3g} units/min"
    if status.status is Status.OUT:
        fire = Signal(
            "StockOut", labels, True, status.ts, "critical",
            f"{where} is out of stock",
            f"Available stock is {status.available} (below zero: oversold); recent sales"
            f" {rate}.",
            {"available": str(status.available)},
        )  # fmt: skip
        return [fire, low]
    if status.status is Status.LOW:
        minutes = status.minutes_to_stockout
        eta = "soon" if minutes is None else f"in about {minutes:.0f} min"
        fire = Signal(
            "LowStockSoon", labels, True, status.ts, "warning",
            f"{where} runs out of stock {eta}",
            f"{status.available} units left, selling {rate}.",
            {"available": str(status.available),
             "minutes_to_stockout": "" if minutes is None else f"{minutes:.1f}"},
        )  # fmt: skip
        return [fire, out]
    return [out, low]
