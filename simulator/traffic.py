"""Traffic over event time: session arrivals per store x channel, each second.

Sessions arrive as a Poisson process whose rate is the base rate times the store's and
channel's shares, times the midnight rush multiplier, times any traffic incident; flash
sales and sellout incidents add sessions drawn to their SKUs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from simulator.catalog import Catalog
from simulator.config import ScenarioConfig
from simulator.incidents import IncidentPlan
from simulator.sessions import Focus, Shoppers

__all__ = ["FlashPlan", "Traffic", "poisson"]

_WARMUP_S = 60


@dataclass(frozen=True)
class FlashPlan:
    """A flash sale resolved to absolute times and the SKU ranks on sale."""

    store: int
    start_ms: int
    end_ms: int
    ranks: tuple[int, ...]
    surge: float
    price_factor: float


class Traffic:
    def __init__(
        self,
        config: ScenarioConfig,
        catalog: Catalog,
        plan: IncidentPlan,
        flash: list[FlashPlan],
        shoppers: Shoppers,
        rng: random.Random,
    ) -> None:
        self._config = config
        self._catalog = catalog
        self._plan = plan
        self._flash = flash
        self._shoppers = shoppers
        self._rng = rng
        total = sum(config.channel_weights)
        self._channel_shares = [weight / total for weight in config.channel_weights]
        # sessions/s that give base_rate events/s
        self.session_rate = config.base_rate / config.funnel.events_per_session()

    def multiplier(self, ts_ms: int) -> float:
        """The midnight rush: x rush_multiplier for rush_minutes, steady conversion."""
        config = self._config
        if config.rush_start_ms <= ts_ms < config.rush_end_ms:
            return config.rush_multiplier
        return 1.0

    def run(self, progress: Callable[[float], None] | None = None) -> None:
        config = self._config
        rng = self._rng
        rnd = rng.random
        session = self._shoppers.session
        plan = self._plan
        store_weights = self._catalog.store_weights
        shares = self._channel_shares
        slices = math.ceil(config.duration_s)
        # sessions from a minute before the start, their events before it dropped: the
        # first windows already see the steady state (clicks of earlier impressions, ...)
        warmup = _WARMUP_S
        hot = [
            (incident, Focus((incident.sku_rank,), 0.8))
            for incident in plan.sellouts
            if incident.sku_rank is not None
        ]
        flash = [(sale, Focus(sale.ranks, 0.8)) for sale in self._flash]
        impressions = config.funnel.impressions_per_session
        for second in range(-warmup, slices):
            slice_start = config.start_ms + second * 1000
            width = min(1.0, config.duration_s - second)
            rate = self.session_rate * self.multiplier(slice_start) * width
            for store, store_weight in enumerate(store_weights):
                for channel, share in enumerate(shares):
                    factor = plan.traffic_factor(store, channel, slice_start)
                    for _ in range(poisson(rng, rate * store_weight * share * factor)):
                        session(store, channel, slice_start + rnd() * 1000 * width, None)
            for sale, focus in flash:
                if sale.start_ms <= slice_start < sale.end_ms:
                    extra = rate * store_weights[sale.store] * sale.surge
                    self._focused(sale.store, slice_start, width, extra, focus)
            for incident, focus in hot:
                if incident.start_ms <= slice_start < incident.end_ms:
                    # `factor` extra impressions/s on the hot SKU
                    extra = incident.factor * width / (impressions * focus.share)
                    self._focused(incident.store, slice_start, width, extra, focus)
            if progress is not None and second % 10 == 0:
                progress((second + warmup) / (slices + warmup))
        if progress is not None:
            progress(1.0)

    def _focused(
        self, store: int, slice_start: int, width: float, rate: float, focus: Focus
    ) -> None:
        rng = self._rng
        for channel, share in enumerate(self._channel_shares):
            factor = self._plan.traffic_factor(store, channel, slice_start)
            for _ in range(poisson(rng, rate * share * factor)):
                self._shoppers.session(
                    store, channel, slice_start + rng.random() * 1000 * width, focus
                )


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw: exact for small means, normal approximation for large ones."""
    if lam <= 0:
        return 0
    if lam < 30:
        limit = math.exp(-lam)
        count = 0
        product = rng.random()
        while product > limit:
            count += 1
            product *= rng.random()
        return count
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))
