"""The campaign calendar (`SALEWATCH_CAMPAIGN_FILE`): sale phases, thresholds, references.

A YAML file (example: alerts/campaign.example.yml; reference: docs/alerts.md):

- `thresholds`: overrides of the defaults (alerts.thresholds), for every key and time;
- `phases`: scheduled periods (warm-up, midnight peak, flash sales, tail) with `start` and
  `end` (ISO-8601 with a UTC offset), the expected `traffic_multiplier` against normal
  traffic, optional `stores` / `channels` (glob patterns; default all), `baseline`
  (`follow`: the phase's windows teach the baselines; `hold`: they are judged but not
  learnt, so the level after the phase is the level before it) and `thresholds`
  overrides that apply while the phase runs. Where phases overlap, multipliers multiply
  and later phases' overrides win;
- `reference`: optional expected rates per store / channel, used as the baseline while a
  key has too little history of its own (a worker started in the middle of the night);
- `spend` of a phase: what each store in its scope spends per channel over the phase
  (`{app: 120000, live: 80000}`, in `spend_currency`, default CNY), spread evenly over
  the phase's time; overlapping phases add up. Final windows carry their share, ROI (GMV
  in that currency / spend) and cost per paid order. A phase with spend only (traffic
  multiplier 1) prices the whole campaign.

A scheduled phase change re-bases: traffic baselines are kept in normal-traffic units
(clicks / multiplier), so a x20 midnight peak or its end is no incident; and windows that
touch a phase boundary are not judged (funnel lag makes their ratios wrong).
"""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alerts.thresholds import Stage, Thresholds
from streams.contract.errors import ConfigError, SalewatchError
from streams.merge.partition import Spend
from streams.runtime.settings import Settings

__all__ = ["Calendar", "CampaignError", "Phase", "Reference", "calendar_of", "load_calendar"]


class CampaignError(SalewatchError, ValueError):
    """The campaign file is missing or invalid; the message says where."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Scoped(_Model):
    stores: tuple[str, ...] = ("*",)
    channels: tuple[str, ...] = ("*",)

    def applies_to(self, store_id: str, channel: str) -> bool:
        return any(fnmatch.fnmatchcase(store_id, p) for p in self.stores) and any(
            fnmatch.fnmatchcase(channel, p) for p in self.channels
        )


class Phase(_Scoped):
    name: str = Field(min_length=1, max_length=100)
    start: datetime
    end: datetime
    traffic_multiplier: Annotated[float, Field(gt=0, le=10_000)] = 1.0
    baseline: Literal["follow", "hold"] = "follow"
    thresholds: dict[str, Any] = Field(default_factory=dict)
    # channel -> what each store in scope spends on it over the phase
    spend: dict[
        Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")],
        Annotated[Decimal, Field(ge=0, allow_inf_nan=False)],
    ] = Field(default_factory=dict)

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-11-11T00:00:00+08:00")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    @property
    def start_ms(self) -> int:
        return round(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return round(self.end.timestamp() * 1000)


class Reference(_Scoped):
    """Expected rates of a store x channel at normal traffic (a cold-start baseline)."""

    conversion: dict[Stage, float] = Field(default_factory=dict)
    payment_failure_rate: Annotated[float | None, Field(ge=0, le=1)] = None
    refund_rate: Annotated[float | None, Field(ge=0)] = None
    complaint_rate: Annotated[float | None, Field(ge=0)] = None
    clicks_per_minute: Annotated[float | None, Field(gt=0)] = None

    @field_validator("conversion")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        if any(rate <= 0 for rate in value.values()):
            raise ValueError("conversion rates must be positive")
        return value


class CampaignFile(_Model):
    thresholds: dict[str, Any] = Field(default_factory=dict)
    reference: tuple[Reference, ...] = ()
    phases: tuple[Phase, ...] = ()
    spend_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "CNY"


@dataclass(frozen=True)
class Calendar:
    """Answers, per store x channel and event-time window: thresholds, expected traffic
    multiplier, whether a phase boundary is near and whether baselines may learn."""

    defaults: Thresholds = field(default_factory=Thresholds)
    phases: tuple[Phase, ...] = ()
    references: tuple[Reference, ...] = ()
    spend_currency: str = "CNY"
    _cache: dict[tuple[int, ...], Thresholds] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def build(cls, spec: CampaignFile) -> Calendar:
        try:
            defaults = Thresholds().with_overrides(spec.thresholds)
        except ValidationError as exc:
            raise CampaignError("thresholds: " + _describe(exc)) from None
        calendar = cls(defaults, spec.phases, spec.reference, spec.spend_currency)
        for index in range(len(spec.phases)):
            calendar._thresholds_for((index,))  # check every phase's overrides now
        return calendar

    def active(self, store_id: str, channel: str, at_ms: int) -> tuple[int, ...]:
        return tuple(
            i
            for i, phase in enumerate(self.phases)
            if phase.start_ms <= at_ms < phase.end_ms and phase.applies_to(store_id, channel)
        )

    def thresholds(self, store_id: str, channel: str, start_ms: int, end_ms: int) -> Thresholds:
        """The thresholds of the phases running at the window's middle."""
        return self._thresholds_for(self.active(store_id, channel, (start_ms + end_ms) // 2))

    def _thresholds_for(self, phases: tuple[int, ...]) -> Thresholds:
        found = self._cache.get(phases)
        if found is None:
            found = self.defaults
            for index in phases:
                try:
                    found = found.with_overrides(self.phases[index].thresholds)
                except ValidationError as exc:
                    raise CampaignError(
                        f"phases[{index}] ({self.phases[index].name}): thresholds: "
                        + _describe(exc)
                    ) from None
            self._cache[phases] = found
        return found

    def multiplier(self, store_id: str, channel: str, start_ms: int, end_ms: int) -> float:
        """Expected traffic against normal, averaged over the window."""
        cuts = {start_ms, end_ms}
        for phase in self._matching(store_id, channel):
            cuts.update(t for t in (phase.start_ms, phase.end_ms) if start_ms < t < end_ms)
        points = sorted(cuts)
        total = 0.0
        for a, b in itertools.pairwise(points):
            product = 1.0
            for index in self.active(store_id, channel, a):
                product *= self.phases[index].traffic_multiplier
            total += product * (b - a)
        return total / (end_ms - start_ms)

    def spend(self, store_id: str, channel: str, start_ms: int, end_ms: int) -> Spend | None:
        """The store x channel's campaign spend in the window: each phase's spend on the
        channel times the share of the phase the window covers; None when no phase with
        spend on the channel overlaps the window."""
        total: Decimal | None = None
        for phase in self._matching(store_id, channel):
            amount = phase.spend.get(channel)
            overlap = min(end_ms, phase.end_ms) - max(start_ms, phase.start_ms)
            if amount is None or overlap <= 0:
                continue
            share = amount * overlap / (phase.end_ms - phase.start_ms)
            total = share if total is None else total + share
        return None if total is None else Spend(total, self.spend_currency)

    def near_boundary(
        self, store_id: str, channel: str, start_ms: int, end_ms: int, settle_ms: int
    ) -> bool:
        """A phase starts or ends inside the window, or up to `settle_ms` before it."""
        return any(
            start_ms - settle_ms <= t < end_ms
            for phase in self._matching(store_id, channel)
            for t in (phase.start_ms, phase.end_ms)
        )

    def holds_baseline(self, store_id: str, channel: str, start_ms: int, end_ms: int) -> bool:
        middle = (start_ms + end_ms) // 2
        return any(
            self.phases[i].baseline == "hold" for i in self.active(store_id, channel, middle)
        )

    def reference(self, store_id: str, channel: str) -> Reference | None:
        """The last matching reference entry."""
        found = None
        for reference in self.references:
            if reference.applies_to(store_id, channel):
                found = reference
        return found

    def sale_start_ms(self, now_ms: int) -> int:
        """Where the war room's "sale so far" starts: the first phase's start once it has
        begun, else (no calendar, or before it) midnight of today in the local time zone."""
        first = min((phase.start_ms for phase in self.phases), default=None)
        if first is not None and first <= now_ms:
            return first
        today = datetime.fromtimestamp(now_ms / 1000).astimezone()
        midnight = today.replace(hour=0, minute=0, second=0, microsecond=0)
        return round(midnight.timestamp() * 1000)

    def phases_running(self, now_ms: int) -> dict[str, bool]:
        """Each phase name and whether a phase of that name runs now (any store)."""
        running: dict[str, bool] = {}
        for phase in self.phases:
            now_in = phase.start_ms <= now_ms < phase.end_ms
            running[phase.name] = running.get(phase.name, False) or now_in
        return running

    def _matching(self, store_id: str, channel: str) -> Iterable[Phase]:
        return (phase for phase in self.phases if phase.applies_to(store_id, channel))


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}"
        for err in exc.errors(include_url=False)
    )


def calendar_of(settings: Settings) -> Calendar:
    """The calendar `SALEWATCH_CAMPAIGN_FILE` names (the default one when unset); a bad
    file is a ConfigError naming the variable, so the worker stops at start saying so."""
    if not settings.campaign_file:
        return Calendar.build(CampaignFile())
    try:
        return load_calendar(settings.campaign_file)
    except CampaignError as exc:
        raise ConfigError(f"SALEWATCH_CAMPAIGN_FILE: {exc}") from None


def load_calendar(path: str | Path) -> Calendar:
    """Read and check a campaign file; CampaignError says what is wrong and where."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CampaignError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise CampaignError(f"{path}: not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CampaignError(f"{path}: expected a mapping with thresholds, reference, phases")
    try:
        return Calendar.build(CampaignFile.model_validate(raw))
    except ValidationError as exc:
        raise CampaignError(f"{path}: {_describe(exc)}") from None
    except CampaignError as exc:
        raise CampaignError(f"{path}: {exc}") from None
