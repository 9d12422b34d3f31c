"""What the other stores say about a sparse rate: an empirical-Bayes prior for one store's
baseline of refunds (or complaints) per paid order.

A store's own history is short at the start of a sale: 12 minutes of 75 paid orders a
minute hold about 16 refunds, which pin a 3% rate only to about +-25%. The other stores on
the worker measure the same kind of rate. Each store's rate is modelled as drawn from a
beta distribution around the fleet's rate m with a spread tau^2 between stores, estimated
from the stores' own baselines by the DerSimonian-Laird method (the between-study variance
of meta-analysis). The prior is Beta(kappa m, kappa (1 - m)) with kappa = m (1 - m) /
tau^2 - 1 pseudo paid orders, added to the store's baseline counts:

- stores alike (tau^2 about 0): the store is judged against the fleet's rate, as well
  known as the fleet's paid orders allow (kappa is capped at their number);
- stores that differ (apparel and electronics): kappa is small, and the store's own
  history decides; as that history grows it outweighs any prior.

The store itself counts in tau^2 (a store whose rate differs widens the spread) but not in
m or the cap, so its own windows are never counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MIN_STORES", "FleetRates", "Prior"]

MIN_STORES = 3  # other stores with a baseline needed before they say anything


@dataclass(frozen=True)
class Prior:
    """Beta prior as pseudo-counts: `successes` of `trials`."""

    successes: float
    trials: float


@dataclass
class FleetRates:
    """Each store's latest baseline counts (successes, trials) per alert name; shared by the
    evaluators of a worker's partitions, so a worker's stores form the fleet."""

    counts: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)

    def update(self, alertname: str, store_id: str, successes: int, trials: int) -> None:
        stores = self.counts.setdefault(alertname, {})
        if trials > 0:
            stores[store_id] = (successes, trials)
        else:
            stores.pop(store_id, None)

    def forget(self, store_id: str) -> None:
        for stores in self.counts.values():
            stores.pop(store_id, None)

    def prior(self, alertname: str, store_id: str) -> Prior | None:
        """The prior for `store_id`'s rate from the other stores; None with fewer than
        MIN_STORES of them or no event at all among them."""
        stores = self.counts.get(alertname, {})
        others = [c for s, c in stores.items() if s != store_id]
        if len(others) < MIN_STORES:
            return None
        successes = sum(x for x, _ in others)
        trials = sum(n for _, n in others)
        m = successes / trials
        if m <= 0.0 or m >= 1.0:
            return None
        spread = between_store_variance(list(stores.values()))
        kappa = float(trials) if spread <= 0.0 else m * (1.0 - m) / spread - 1.0
        kappa = min(max(kappa, 0.0), float(trials))
        return Prior(kappa * m, kappa) if kappa > 0.0 else None


def between_store_variance(counts: list[tuple[int, int]]) -> float:
    """DerSimonian-Laird estimate of the variance of the stores' true rates (0 when the
    observed spread is what binomial noise alone gives)."""
    m = sum(x for x, _ in counts) / sum(n for _, n in counts)
    if m <= 0.0 or m >= 1.0:
        return 0.0
    weights = [n / (m * (1.0 - m)) for _, n in counts]
    q = sum(w * (x / n - m) ** 2 for w, (x, n) in zip(weights, counts, strict=True))
    total = sum(weights)
    scale = total - sum(w * w for w in weights) / total
    if scale <= 0.0:
        return 0.0
    return max(0.0, (q - (len(counts) - 1)) / scale)
