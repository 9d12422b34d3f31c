"""Stores and their SKUs: ids, Zipf-like popularity, prices and categories."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from decimal import Decimal

from simulator.config import ScenarioConfig

__all__ = ["Catalog", "StoreCatalog"]

CATEGORIES = (
    "apparel",
    "beauty",
    "electronics",
    "home",
    "food",
    "baby",
    "sports",
    "books",
    "pets",
    "appliances",
    "shoes",
    "jewelry",
)
_CENTS = (0, 0, 90, 99, 50)


@dataclass(frozen=True)
class StoreCatalog:
    """One store's SKUs, indexed by popularity rank (0 = the hottest)."""

    index: int
    store_id: str
    sku_ids: tuple[str, ...]
    cum_weights: tuple[float, ...]  # Zipf popularity, cumulative, for random.choices
    categories: tuple[str, ...]
    prices: tuple[Decimal, ...]

    def rank_of(self, sku_id: str) -> int:
        return self.sku_ids.index(sku_id)

    def popularity(self, rank: int) -> float:
        """Share of the store's impressions that go to the SKU of this rank."""
        low = self.cum_weights[rank - 1] if rank else 0.0
        return (self.cum_weights[rank] - low) / self.cum_weights[-1]


@dataclass(frozen=True)
class Catalog:
    stores: tuple[StoreCatalog, ...]
    store_weights: tuple[float, ...]  # share of the traffic per store, sums to 1

    @classmethod
    def build(cls, config: ScenarioConfig, rng: random.Random) -> Catalog:
        skus = config.skus_per_store
        weights = [1.0 / (rank + 1) ** config.zipf_s for rank in range(skus)]
        cum_weights = tuple(itertools.accumulate(weights))
        stores = []
        for index in range(config.stores):
            numbers = list(range(1, skus + 1))
            rng.shuffle(numbers)
            width = max(5, len(str(skus)))
            stores.append(
                StoreCatalog(
                    index=index,
                    store_id=f"store-{index:03d}",
                    sku_ids=tuple(f"sku-{number:0{width}d}" for number in numbers),
                    cum_weights=cum_weights,
                    categories=tuple(rng.choice(CATEGORIES) for _ in range(skus)),
                    prices=tuple(_price(rng) for _ in range(skus)),
                )
            )
        return cls(stores=tuple(stores), store_weights=_store_weights(config))

    def store(self, index: int) -> StoreCatalog:
        return self.stores[index]


def _store_weights(config: ScenarioConfig) -> tuple[float, ...]:
    if config.store_weights is not None:
        total = sum(config.store_weights)
        return tuple(weight / total for weight in config.store_weights)
    if config.stores == 1:
        return (1.0,)
    rest = [1.0 / index for index in range(1, config.stores)]
    scale = (1.0 - config.flagship_share) / sum(rest)
    return (config.flagship_share, *(weight * scale for weight in rest))


def _price(rng: random.Random) -> Decimal:
    """Log-normal around 60 CNY, priced like a shop does: 59.00, 129.90, 18.99."""
    value = math.exp(rng.gauss(math.log(60.0), 0.9))
    yuan = min(max(int(value), 1), 20_000)
    return Decimal(f"{yuan}.{rng.choice(_CENTS):02d}")
