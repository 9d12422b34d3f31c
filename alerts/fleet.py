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

__all__ = ["MIN_STORES", "FleetRates", "Prior", "RateSums"]

MIN_STORES = 3  # other stores with a baseline needed before they say anything


@dataclass(frozen=True)
class Prior:
    """Beta prior as pseudo-counts: `successes` of `trials`."""

    successes: float
    trials: float


@dataclass
class RateSums:
    """The stores' (successes, trials) of one rate, with running sums so that a store's
    prior costs the same for 5 stores or 500 (a prior is asked for every store's window)."""

    stores: dict[str, tuple[int, int]] = field(default_factory=dict)
    successes: int = 0
    trials: int = 0
    trials_squared: int = 0  # sum of n^2
    rate_squares: float = 0.0  # sum of x^2 / n

    def put(self, store_id: str, successes: int, trials: int) -> None:
        self.remove(store_id)
        if trials > 0:
            self.stores[store_id] = (successes, trials)
            self._add(successes, trials, 1)

    def remove(self, store_id: str) -> None:
        old = self.stores.pop(store_id, None)
        if old is not None:
            self._add(*old, -1)

    def _add(self, successes: int, trials: int, sign: int) -> None:
        self.successes += sign * successes
        self.trials += sign * trials
        self.trials_squared += sign * trials * trials
        self.rate_squares += sign * successes * successes / trials

    def spread(self) -> float:
        """DerSimonian-Laird estimate of the variance of the stores' true rates around
        their pooled rate m (0 when the observed spread is what binomial noise alone gives):
        Q = sum w (x/n - m)^2 with weights w = n / (m (1 - m)), tau^2 = (Q - (k - 1)) /
        (sum w - sum w^2 / sum w)."""
        if len(self.stores) < 2:
            return 0.0
        m = self.successes / self.trials
        if m <= 0.0 or m >= 1.0:
            return 0.0
        noise = m * (1.0 - m)
        q = (self.rate_squares - self.successes * self.successes / self.trials) / noise
        scale = (self.trials - self.trials_squared / self.trials) / noise
        if scale <= 0.0:
            return 0.0
        return max(0.0, (q - (len(self.stores) - 1)) / scale)


@dataclass
class FleetRates:
    """Each store's latest baseline counts per alert name; shared by the evaluators of a
    worker's partitions, so a worker's stores form the fleet."""

    rates: dict[str, RateSums] = field(default_factory=dict)

    def update(self, alertname: str, store_id: str, successes: int, trials: int) -> None:
        self.rates.setdefault(alertname, RateSums()).put(store_id, successes, trials)

    def forget(self, store_id: str) -> None:
        for sums in self.rates.values():
            sums.remove(store_id)

    def prior(self, alertname: str, store_id: str) -> Prior | None:
        """The prior for `store_id`'s rate from the other stores; None with fewer than
        MIN_STORES of them or no event at all among them."""
        sums = self.rates.get(alertname)
        if sums is None:
            return None
        own_successes, own_trials = sums.stores.get(store_id, (0, 0))
        others = len(sums.stores) - (store_id in sums.stores)
        successes, trials = sums.successes - own_successes, sums.trials - own_trials
        if others < MIN_STORES or trials <= 0:
            return None
        m = successes / trials
        if m <= 0.0 or m >= 1.0:
            return None
        spread = sums.spread()
        kappa = float(trials) if spread <= 0.0 else m * (1.0 - m) / spread - 1.0
        kappa = min(max(kappa, 0.0), float(trials))
        return Prior(kappa * m, kappa) if kappa > 0.0 else None
