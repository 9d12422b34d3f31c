"""Detector thresholds: the contract's defaults, overridable per campaign file and phase.

No volume gates: every series is judged by a one-sided test against its baseline. A
`pool_volume` is how much denominator a judgement aims for: a series that has less in one
window is judged over up to `pooling.max_windows` consecutive windows (statistical power
depends on counts, not on rates). docs/alerts.md explains each value.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "STAGES",
    "Baseline",
    "ConversionRule",
    "HysteresisRule",
    "PaymentRule",
    "Pooling",
    "Significance",
    "StockRule",
    "SurgeRule",
    "Thresholds",
    "TrafficRule",
    "Transition",
    "merge_overrides",
]

Stage = Literal["click", "cart", "order", "pay"]
STAGES: tuple[Stage, ...] = ("click", "cart", "order", "pay")
Probability = float


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HysteresisRule(_Model):
    """Fire after `fire_k` breaching windows among the last `fire_n`; resolve after
    `resolve_m` clean windows in a row. Ratio alerts fire on the first breach: a breach is
    already significant at the series' daily budget, and a thin series' breach already
    pools several windows; more would only delay the page."""

    fire_k: Annotated[int, Field(ge=1, le=16)] = 1
    fire_n: Annotated[int, Field(ge=1, le=16)] = 1
    resolve_m: Annotated[int, Field(ge=1, le=1000)] = 3

    @model_validator(mode="after")
    def _k_within_n(self) -> Self:
        if self.fire_k > self.fire_n:
            raise ValueError("fire_k must not exceed fire_n")
        return self


class Significance(_Model):
    """False-alarm budgets of one series (an alert name and its labels: a store x channel x
    stage): the chance that it fires at all in `horizon_s` without a real change. Each
    window's tests share it (alerts.detectors.base.Context.level). `alpha` holds for the
    alerts that may page; `warning_alpha` for the warning-only ones (RefundSurge,
    ComplaintSurge), which go to chat and buy speed with more false warnings."""

    alpha: Annotated[Probability, Field(gt=0, lt=1)] = 0.001
    warning_alpha: Annotated[Probability, Field(gt=0, lt=1)] = 0.05
    horizon_s: Annotated[float, Field(gt=0)] = 86_400.0


class Pooling(_Model):
    """A series short of its rule's `pool_volume` in the last window is also judged over
    the last 2, 3, ... consecutive windows, up to the first span that reaches it and at
    most `max_windows`; each span tested costs its share of the window's level."""

    max_windows: Annotated[int, Field(ge=1, le=60)] = 5


class Baseline(_Model):
    """Windows of history per key (clean windows only) and how many are needed first."""

    windows: Annotated[int, Field(ge=2, le=10_000)] = 30
    min_windows: Annotated[int, Field(ge=1, le=10_000)] = 5

    @model_validator(mode="after")
    def _min_within_size(self) -> Self:
        if self.min_windows > self.windows:
            raise ValueError("min_windows must not exceed windows")
        return self


class Transition(_Model):
    """Funnel lag makes ratios of a window wrong while traffic steps: a window whose
    denominator jumps or falls `step_ratio`-fold against the previous window, or that
    touches a scheduled phase boundary, is skipped with the `settle_windows` after it."""

    step_ratio: Annotated[float, Field(gt=1)] = 3.0
    settle_windows: Annotated[int, Field(ge=0, le=100)] = 1


class ConversionRule(_Model):
    stages: tuple[Stage, ...] = STAGES
    min_relative_drop: Annotated[Probability, Field(gt=0, le=1)] = 0.30
    critical_relative_drop: Annotated[Probability, Field(gt=0, le=1)] = 0.60
    critical_stages: tuple[Stage, ...] = ("order", "pay")
    pool_volume: Annotated[int, Field(ge=1)] = 100  # previous-stage count a judgement aims for
    hysteresis: HysteresisRule = HysteresisRule()


class PaymentRule(_Model):
    min_rate: Annotated[Probability, Field(ge=0, le=1)] = 0.10
    baseline_factor: Annotated[float, Field(ge=1)] = 3.0
    pool_volume: Annotated[int, Field(ge=1)] = 50  # payment attempts
    hysteresis: HysteresisRule = HysteresisRule()


class SurgeRule(_Model):
    """After-sales events (refund requests, complaints) per paid order of a store (its
    channels summed)."""

    baseline_factor: Annotated[float, Field(ge=1)] = 3.0
    # paid orders: refunds are rare (~3%), so a judgement needs many orders to see a wave
    pool_volume: Annotated[int, Field(ge=1)] = 500
    hysteresis: HysteresisRule = HysteresisRule()


class TrafficRule(_Model):
    min_relative_drop: Annotated[Probability, Field(gt=0, le=1)] = 0.80
    pool_volume: Annotated[float, Field(gt=0)] = 20.0  # expected clicks
    hysteresis: HysteresisRule = HysteresisRule(fire_k=2, fire_n=2, resolve_m=2)
    forget_after_s: Annotated[float, Field(gt=0)] = 6 * 3600.0  # silent this long: forgotten


class StockRule(_Model):
    """Stock alerts follow the inventory status; resolving can wait (wall clock) so a SKU
    hovering around the line does not flap."""

    out_resolve_hold_s: Annotated[float, Field(ge=0)] = 0.0
    low_resolve_hold_s: Annotated[float, Field(ge=0)] = 120.0
    slow_resolve_hold_s: Annotated[float, Field(ge=0)] = 600.0


class Thresholds(_Model):
    significance: Significance = Significance()
    baseline: Baseline = Baseline()
    transition: Transition = Transition()
    pooling: Pooling = Pooling()
    conversion: ConversionRule = ConversionRule()
    payment_failure: PaymentRule = PaymentRule()
    refund: SurgeRule = SurgeRule()
    # complaints are rarer still (well under 1% of paid orders)
    complaint: SurgeRule = SurgeRule(pool_volume=2000)
    traffic: TrafficRule = TrafficRule()
    stock: StockRule = StockRule()

    def with_overrides(self, overrides: dict[str, Any]) -> Thresholds:
        """A copy with a nested partial dict applied (validated: unknown keys fail)."""
        if not overrides:
            return self
        return Thresholds.model_validate(merge_overrides(self.model_dump(), overrides))


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged
