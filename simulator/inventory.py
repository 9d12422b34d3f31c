"""Stock per store x SKU, planned after demand is known so the truth holds by construction.

Every pair gets a `stock_snapshot` at the start. Its value is sized from the pair's own
demand (holds, releases, returns, restocks, adjustments): enough that stock never runs low
unless an incident says so. A `sellout` pair starts with exactly the units held up to the
first order at or after the incident's start, so it hits 0 there while orders keep coming,
and is restocked when the incident ends. A `selldown` pair starts with what it sells until
the incident ends plus `factor` minutes of stock at its sales rate then (the worker's
velocity: an exponentially weighted rate of held units), so it runs low without running
out, and is restocked likewise. Periodic snapshots carry the true stock at their
ts (every change with ts <= the snapshot's), for pairs whose stock moved since the last
one; none is sent while a pair is oversold (a snapshot cannot be negative).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from simulator.catalog import Catalog
from simulator.config import ScenarioConfig
from simulator.incidents import IncidentPlan, ResolvedIncident
from simulator.ledger import ADJUST, HOLD, RESTOCK, StockLedger
from simulator.sink import EventSink
from simulator.topics import INVENTORY
from simulator.traffic import poisson

__all__ = ["InventoryOutcome", "InventoryPlanner", "RunningLow", "StockOut"]

_VELOCITY_WINDOW_MS = 60_000
_COVER_MINUTES = 120  # stock always covers this long at the pair's peak one-minute sales
_MIN_SAFETY = 50
_ADJUST_REASONS = ("cycle_count", "damaged", "found", "quality_hold")


@dataclass(frozen=True)
class StockOut:
    """A sellout incident's stock-out, in event time."""

    store_id: str
    sku: str
    starts_at_ms: int  # ts of the order_created that took stock to 0
    ends_at_ms: int | None  # ts of the restock that ended it; None: still out at the end
    incident: ResolvedIncident


@dataclass(frozen=True)
class RunningLow(StockOut):
    """A selldown incident's running-low spell: from the order after which its stock lasts
    at most `low_stock_minutes` at its sales rate, until the restock that ends it."""


@dataclass
class InventoryOutcome:
    final: dict[tuple[str, str], int] = field(default_factory=dict)
    initial: dict[tuple[str, str], int] = field(default_factory=dict)
    last_sale: dict[tuple[str, str], int] = field(default_factory=dict)  # latest hold ts
    stockouts: list[StockOut] = field(default_factory=list)
    running_low: list[RunningLow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class InventoryPlanner:
    def __init__(
        self,
        config: ScenarioConfig,
        catalog: Catalog,
        plan: IncidentPlan,
        ledger: StockLedger,
        sink: EventSink,
        rng: random.Random,
    ) -> None:
        self._config = config
        self._catalog = catalog
        self._plan = plan
        self._ledger = ledger
        self._sink = sink
        self._rng = rng
        self._channel = config.inventory_channel

    def _event(self, kind: str, ts: int, store: int, rank: int, **fields: Any) -> None:
        catalog = self._catalog.store(store)
        self._sink.add(
            ts,
            INVENTORY,
            {
                "event_id": self._sink.next_id(),
                "type": kind,
                "ts": self._sink.ts_value(ts),
                "store_id": catalog.store_id,
                "channel": self._channel,
                "sku": catalog.sku_ids[rank],
                **fields,
            },
        )

    def run(self) -> InventoryOutcome:
        outcome = InventoryOutcome()
        self._random_changes()
        initial: dict[int, int] = {}
        for incident in self._plan.sellouts:
            self._sellout(incident, initial, outcome)
        for incident in self._plan.selldowns:
            self._selldown(incident, initial, outcome)
        config = self._config
        ledger = self._ledger
        rng = self._rng
        start_ms = config.start_ms
        interval_ms = max(1, round(config.snapshot_interval_s)) * 1000
        snapshot_times = list(range(start_ms + interval_ms, config.end_ms, interval_ms))
        for store, catalog in enumerate(self._catalog.stores):
            for rank, sku in enumerate(catalog.sku_ids):
                pair = ledger.pair(store, rank)
                changes = ledger.sorted_changes(pair)
                base = initial.get(pair)
                if base is None:
                    base = _sized(changes) + rng.randint(0, 200)
                self._event("stock_snapshot", start_ms, store, rank, available=base)
                available = base
                index = 0
                for at in snapshot_times:
                    moved = False
                    while index < len(changes) and changes[index][0] <= at:
                        available += changes[index][1]
                        index += 1
                        moved = True
                    if moved and available >= 0:
                        self._event("stock_snapshot", at, store, rank, available=available)
                for _ts, delta, _kind in changes[index:]:
                    available += delta
                key = (catalog.store_id, sku)
                outcome.initial[key] = base
                outcome.final[key] = available
                holds = [ts for ts, _delta, kind in changes if kind == HOLD]
                if holds:
                    outcome.last_sale[key] = max(holds)
        return outcome

    def _random_changes(self) -> None:
        """Restocks and stock adjustments spread over the scenario, by popularity."""
        config = self._config
        rng = self._rng
        sink = self._sink
        minutes = config.duration_s / 60.0
        span = config.end_ms - config.start_ms
        for store, catalog in enumerate(self._catalog.stores):
            population = range(len(catalog.sku_ids))
            count = poisson(rng, config.restocks_per_store_minute * minutes)
            for rank in rng.choices(population, cum_weights=catalog.cum_weights, k=count):
                ts = sink.place(config.start_ms + 1 + rng.random() * (span - 1))
                qty = rng.choice((50, 100, 200, 500, 1000))
                if ts < config.end_ms and self._ledger.may_raise(store, rank, ts):
                    self._ledger.add(store, rank, ts, qty, RESTOCK)
                    self._event("restock", ts, store, rank, qty=qty)
            count = poisson(rng, config.adjusts_per_store_minute * minutes)
            for rank in rng.choices(population, cum_weights=catalog.cum_weights, k=count):
                ts = sink.place(config.start_ms + 1 + rng.random() * (span - 1))
                delta = -rng.randint(1, 5) if rng.random() < 0.7 else rng.randint(1, 3)
                if ts < config.end_ms and ts >= self._ledger.protected_until(store, rank):
                    self._ledger.add(store, rank, ts, delta, ADJUST)
                    reason = rng.choice(_ADJUST_REASONS)
                    self._event("stock_adjust", ts, store, rank, delta=delta, reason=reason)

    def _sellout(
        self, incident: ResolvedIncident, initial: dict[int, int], outcome: InventoryOutcome
    ) -> None:
        assert incident.sku_rank is not None and incident.sku is not None
        ledger = self._ledger
        store, rank = incident.store, incident.sku_rank
        pair = ledger.pair(store, rank)
        changes = ledger.sorted_changes(pair)
        # until the incident ends the pair only goes down (the ledger protects it)
        crossing = next(
            (
                ts
                for ts, _delta, kind in changes
                if kind == HOLD and incident.start_ms <= ts < incident.end_ms
            ),
            None,
        )
        if crossing is None:
            outcome.notes.append(
                f"sellout of {incident.store_id}/{incident.sku}: no order in the incident, "
                "no stock-out"
            )
            return
        held = -sum(delta for ts, delta, _kind in changes if ts <= crossing)
        initial[pair] = held  # 0 left after the crossing order
        ends_at = self._restock_at_end(incident, held, changes)
        outcome.stockouts.append(
            StockOut(incident.store_id, incident.sku, crossing, ends_at, incident)
        )

    def _selldown(
        self, incident: ResolvedIncident, initial: dict[int, int], outcome: InventoryOutcome
    ) -> None:
        assert incident.sku_rank is not None and incident.sku is not None
        config = self._config
        pair = self._ledger.pair(incident.store, incident.sku_rank)
        # until the incident ends the pair only goes down (the ledger protects it)
        changes = self._ledger.sorted_changes(pair)
        velocity = _Velocity(config.velocity_half_life_ms)
        moved = lowest = 0  # stock moved since the opening, and its lowest point
        holds = []  # (ts, stock moved, units per minute) after each hold of the incident
        for ts, delta, kind in changes:
            if ts >= incident.end_ms:
                break
            moved += delta
            lowest = min(lowest, moved)
            if kind == HOLD:
                velocity.add(ts, -delta)
                if ts >= incident.start_ms:
                    holds.append((ts, moved, velocity.per_minute(ts)))
        left = max(1, math.floor(incident.factor * velocity.per_minute(incident.end_ms)))
        base = max(left - moved, 1 - lowest)  # never out before the end
        initial[pair] = base
        low_from = next(
            (ts for ts, at, rate in holds if base + at <= config.low_stock_minutes * rate), None
        )
        if low_from is None:
            outcome.notes.append(
                f"selldown of {incident.store_id}/{incident.sku}: its stock never runs low "
                f"({left} units left, {incident.factor} minutes at its rate)"
            )
            return
        ends_at = self._restock_at_end(incident, base, changes)
        outcome.running_low.append(
            RunningLow(incident.store_id, incident.sku, low_from, ends_at, incident)
        )

    def _restock_at_end(
        self, incident: ResolvedIncident, base: int, changes: list[tuple[int, int, int]]
    ) -> int | None:
        """A stock incident that ends before the scenario does ends with a restock that
        covers the rest of the scenario; returns its ts (None: no restock)."""
        if incident.open_ended:
            return None
        assert incident.sku_rank is not None
        restock_ts = self._sink.place(incident.end_ms)
        if restock_ts >= self._config.end_ms:
            return None
        before = base + sum(delta for ts, delta, _kind in changes if ts <= restock_ts)
        after = [delta for ts, delta, _kind in changes if ts > restock_ts]
        qty = -before + _sized_after(after, changes) + _MIN_SAFETY
        self._ledger.add(incident.store, incident.sku_rank, restock_ts, qty, RESTOCK)
        self._event("restock", restock_ts, incident.store, incident.sku_rank, qty=qty)
        return restock_ts


class _Velocity:
    """Units held per minute as the worker reckons it (streams/inventory/stock.py): an
    exponentially weighted sum of holds in event time over its time constant."""

    def __init__(self, half_life_ms: int) -> None:
        self._tau_ms = half_life_ms / math.log(2)
        self._sum = 0.0
        self._ts = 0

    def add(self, ts: int, units: int) -> None:  # holds in ts order
        self._sum = self._decayed(ts) + units
        self._ts = ts

    def per_minute(self, now_ms: int) -> float:
        return self._decayed(now_ms) * 60_000 / self._tau_ms

    def _decayed(self, now_ms: int) -> float:
        return self._sum * math.exp(-max(0, now_ms - self._ts) / self._tau_ms)


def _peak_per_minute(changes: list[tuple[int, int, int]]) -> int:
    """Most units held in any one-minute stretch."""
    holds = [(ts, -delta) for ts, delta, kind in changes if kind == HOLD]
    best = total = low = 0
    for ts, qty in holds:
        total += qty
        while holds[low][0] <= ts - _VELOCITY_WINDOW_MS:
            total -= holds[low][1]
            low += 1
        best = max(best, total)
    return best


def _sized(changes: list[tuple[int, int, int]]) -> int:
    """Opening stock that never runs low: covers the lowest point plus the safety stock."""
    lowest = running = 0
    for _ts, delta, _kind in changes:
        running += delta
        lowest = min(lowest, running)
    return -lowest + _safety(changes)


def _sized_after(deltas: list[int], changes: list[tuple[int, int, int]]) -> int:
    lowest = running = 0
    for delta in deltas:
        running += delta
        lowest = min(lowest, running)
    return -lowest + _safety(changes)


def _safety(changes: list[tuple[int, int, int]]) -> int:
    return math.ceil(_COVER_MINUTES * _peak_per_minute(changes)) + _MIN_SAFETY
