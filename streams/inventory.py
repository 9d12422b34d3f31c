"""Available stock per store x SKU in event time, sales velocity and time to stock-out.

Pure logic, no Faust (the agent is streams/inventory_agent.py). The rules
(docs/architecture.md, CONTRACT.md §3), independent of arrival order:

- available = the latest `snapshot` by ts (ties: the larger value) plus every change with
  a ts after it. Without a snapshot the base is 0 and changes count from the first
  inventory event's ts on (snapshot, restock or adjust: the smallest ts seen so far).
- hold, release and return changes that come before tracking starts are kept pending
  (bounded by count and by the fold horizon): an inventory event with an earlier ts may
  still arrive and make them count.
- every change is idempotent by its `id` while it is kept individually.

Per key only what is needed is kept: the applied snapshot (ts, value), a `base` into which
changes more than the fold horizon behind the key's latest ts are folded (and the oldest
ones past a per-key cap), the individual changes after the fold line (for dedup and for
snapshots that arrive out of order), the pending ones, and the sales velocity. A snapshot
that is newer than the applied one but older than the fold line cannot be applied exactly
and is ignored (counted); a change older than the fold line is added to the base without
dedup (counted as late).

Velocity is an exponentially weighted rate of held units in event time: the decayed sum
S(T) = sum(qty_i * exp(-(T - ts_i) / tau)) of every hold, and units per minute = S / tau.
The sum does not depend on the order holds arrive in. "Running low" = available > 0 and
available / velocity <= `low_stock_minutes`; out of stock = available <= 0.
"""

from __future__ import annotations

import enum
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from streams.stock_changes import INVENTORY_KINDS, StockChange, stock_key

__all__ = [
    "Applied",
    "BatchOutcome",
    "InventoryRules",
    "StateStore",
    "Status",
    "StockIndex",
    "StockState",
    "StockStatus",
    "apply_changes",
    "reevaluate",
    "split_key",
    "status_of",
]

MS_PER_MIN = 60_000

Change = tuple[str, int, int]  # id, ts (ms), qty


class Status(enum.StrEnum):
    OK = "ok"
    LOW = "low"
    OUT = "out"


# First byte of an encoded state: lets a table scan skip the (many) keys that are fine.
_STATUS_BYTE = {Status.OK: b"o", Status.LOW: b"l", Status.OUT: b"x"}
_BYTE_STATUS = {byte[0]: status for status, byte in _STATUS_BYTE.items()}


@dataclass(frozen=True)
class InventoryRules:
    low_stock_minutes: float = 30.0
    velocity_half_life_ms: int = 5 * MS_PER_MIN
    fold_horizon_ms: int = 15 * MS_PER_MIN  # the dedup horizon
    max_changes: int = 2_000  # individual counted changes kept per key
    max_pending: int = 1_000  # changes kept per key while waiting for tracking to start

    @property
    def tau_ms(self) -> float:
        return self.velocity_half_life_ms / math.log(2)


class Applied(enum.Enum):
    COUNTED = enum.auto()
    LATE = enum.auto()  # counted, but behind the fold line: no dedup possible
    PENDING = enum.auto()
    BEFORE_SNAPSHOT = enum.auto()  # at or before the applied snapshot: changes nothing
    DUPLICATE = enum.auto()
    STALE_SNAPSHOT = enum.auto()  # not newer than the applied snapshot
    TOO_LATE_SNAPSHOT = enum.auto()  # newer than the applied one, older than the fold line


# Results that leave a state as it was: no table write needed.
_NO_EFFECT = frozenset({Applied.DUPLICATE, Applied.STALE_SNAPSHOT, Applied.TOO_LATE_SNAPSHOT})


@dataclass(slots=True)
class StockState:
    """One store x SKU. `changes` are counted and after `fold_ts`; `pending` are not."""

    snapshot_ts: int | None = None
    snapshot_value: int = 0
    start_ts: int | None = None  # first inventory event's ts
    base: int = 0
    fold_ts: int | None = None  # changes at or before it are in `base`
    max_ts: int | None = None
    rate: float = 0.0  # decayed sum of held units at rate_ts
    rate_ts: int = 0
    status: Status = Status.OK
    changes: list[Change] = field(default_factory=list)
    pending: list[Change] = field(default_factory=list)

    # --- reading ----------------------------------------------------------------------
    @property
    def tracked(self) -> bool:
        return self.snapshot_ts is not None or self.start_ts is not None

    @property
    def available(self) -> int:
        return self.base + sum(qty for _, _, qty in self.changes)

    def velocity_per_min(self, now_ms: int, rules: InventoryRules) -> float:
        if self.rate <= 0.0:
            return 0.0
        decayed = self.rate * math.exp(-max(0, now_ms - self.rate_ts) / rules.tau_ms)
        return decayed * MS_PER_MIN / rules.tau_ms

    def minutes_to_stockout(self, now_ms: int, rules: InventoryRules) -> float | None:
        """0 when out of stock; None when nothing sells (never, at the current rate)."""
        available = self.available
        if available <= 0:
            return 0.0
        velocity = self.velocity_per_min(now_ms, rules)
        return available / velocity if velocity > 1e-12 else None

    def evaluate(self, now_ms: int, rules: InventoryRules) -> Status:
        if not self.tracked:
            return Status.OK
        if self.available <= 0:
            return Status.OUT
        minutes = self.minutes_to_stockout(now_ms, rules)
        if minutes is not None and minutes <= rules.low_stock_minutes:
            return Status.LOW
        return Status.OK

    # --- applying ---------------------------------------------------------------------
    def apply(self, change: StockChange, seen: set[str], rules: InventoryRules) -> Applied:
        """Apply one change; `seen` holds the ids kept individually (updated here)."""
        change_id, ts, kind, qty = change["id"], change["ts"], change["kind"], change["qty"]
        if change_id in seen:
            return Applied.DUPLICATE
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts = ts
        if kind == "snapshot":
            return self._snapshot(change_id, ts, qty, seen)
        seen.add(change_id)
        if kind == "hold":
            self._add_sale(-qty, ts, rules)
        item = (change_id, ts, qty)
        starts = self.snapshot_ts is None and (self.start_ts is None or ts < self.start_ts)
        if kind in INVENTORY_KINDS and starts:
            self._start(ts)
        if self._counts(ts):
            return self._count(item)
        if self.snapshot_ts is not None:
            return Applied.BEFORE_SNAPSHOT
        self.pending.append(item)
        return Applied.PENDING

    def _counts(self, ts: int) -> bool:
        if self.snapshot_ts is not None:
            return ts > self.snapshot_ts
        return self.start_ts is not None and ts >= self.start_ts

    def _count(self, item: Change) -> Applied:
        if self.fold_ts is not None and item[1] <= self.fold_ts:
            self.base += item[2]
            return Applied.LATE
        self.changes.append(item)
        return Applied.COUNTED

    def _start(self, ts: int) -> None:
        """Tracking starts (earlier) at ts: pending changes from ts on now count."""
        self.start_ts = ts
        waiting, self.pending = self.pending, []
        for item in waiting:
            if item[1] >= ts:
                self._count(item)
            else:
                self.pending.append(item)

    def _snapshot(self, change_id: str, ts: int, value: int, seen: set[str]) -> Applied:
        if self.snapshot_ts is not None and (ts, value) <= (self.snapshot_ts, self.snapshot_value):
            return Applied.STALE_SNAPSHOT
        if self.fold_ts is not None and ts < self.fold_ts:
            return Applied.TOO_LATE_SNAPSHOT
        after = [item for item in (*self.changes, *self.pending) if item[1] > ts]
        self.snapshot_ts, self.snapshot_value = ts, value
        self.base, self.fold_ts = value, ts
        self.changes, self.pending = sorted(after, key=_ts), []
        seen.clear()
        seen.update(item[0] for item in self.changes)
        return Applied.COUNTED

    def _add_sale(self, units: int, ts: int, rules: InventoryRules) -> None:
        if ts >= self.rate_ts or self.rate == 0.0:
            decay = math.exp(-(ts - self.rate_ts) / rules.tau_ms) if self.rate else 0.0
            self.rate = self.rate * decay + units
            self.rate_ts = ts
        else:
            self.rate += units * math.exp(-(self.rate_ts - ts) / rules.tau_ms)

    def compact(self, rules: InventoryRules) -> None:
        """Fold counted changes far behind the key's latest ts (or past the cap) into
        `base`; drop pending ones past the horizon or the cap (oldest first)."""
        if self.max_ts is None:
            return
        line = self.max_ts - rules.fold_horizon_ms
        if self.changes:
            self.changes.sort(key=_ts)
            cut = 0
            while cut < len(self.changes) and self.changes[cut][1] <= line:
                cut += 1
            if len(self.changes) - cut > rules.max_changes:
                cut = len(self.changes) - rules.max_changes
                last_ts = self.changes[cut - 1][1]
                while cut < len(self.changes) and self.changes[cut][1] == last_ts:
                    cut += 1
            if cut:
                folded, self.changes = self.changes[:cut], self.changes[cut:]
                self.base += sum(qty for _, _, qty in folded)
                fold_ts = folded[-1][1]
                self.fold_ts = fold_ts if self.fold_ts is None else max(self.fold_ts, fold_ts)
        if self.pending:
            kept = sorted((item for item in self.pending if item[1] > line), key=_ts)
            self.pending = kept[-rules.max_pending :]

    # --- encoding for the table (first byte: status) ----------------------------------
    def encode(self) -> bytes:
        return _STATUS_BYTE[self.status] + orjson.dumps(
            [
                self.snapshot_ts,
                self.snapshot_value,
                self.start_ts,
                self.base,
                self.fold_ts,
                self.max_ts,
                self.rate,
                self.rate_ts,
                self.changes,
                self.pending,
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> StockState:
        (snapshot_ts, snapshot_value, start_ts, base, fold_ts, max_ts, rate, rate_ts, changes,
         pending) = orjson.loads(raw[1:])  # fmt: skip
        return cls(
            snapshot_ts,
            snapshot_value,
            start_ts,
            base,
            fold_ts,
            max_ts,
            rate,
            rate_ts,
            status_of(raw),
            [(i, t, q) for i, t, q in changes],
            [(i, t, q) for i, t, q in pending],
        )


def _ts(item: Change) -> int:
    return item[1]


def status_of(raw: bytes) -> Status:
    """The status of an encoded state, without decoding the rest."""
    return _BYTE_STATUS[raw[0]]


def split_key(key: str) -> tuple[str, str]:
    store_id, _, sku = key.partition("|")
    return store_id, sku


@dataclass(frozen=True, slots=True)
class StockStatus:
    """A key's status as the listeners (alert detectors) and the HTTP API see it."""

    store_id: str
    sku: str
    status: Status
    previous: Status | None  # None: announced after a (re)load, not a transition
    available: int
    velocity_per_min: float
    minutes_to_stockout: float | None
    ts: int  # event time (ms) of the evaluation

    @classmethod
    def of(
        cls,
        key: str,
        state: StockState,
        now_ms: int,
        rules: InventoryRules,
        previous: Status | None,
    ) -> StockStatus:
        store_id, sku = split_key(key)
        return cls(
            store_id,
            sku,
            state.status,
            previous,
            state.available,
            state.velocity_per_min(now_ms, rules),
            state.minutes_to_stockout(now_ms, rules),
            now_ms,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "store_id": self.store_id,
            "sku": self.sku,
            "status": self.status.value,
            "available": self.available,
            "velocity_per_min": round(self.velocity_per_min, 6),
            "minutes_to_stockout": _rounded(self.minutes_to_stockout),
            "ts": self.ts,
        }

    def urgency(self) -> tuple[int, float, float]:
        """Sort key, most urgent first: out (most oversold, then fastest selling), then
        low by minutes to stock-out."""
        if self.status is Status.OUT:
            return 0, float(self.available), -self.velocity_per_min
        minutes = self.minutes_to_stockout
        return 1, minutes if minutes is not None else math.inf, float(self.available)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class StateStore(Protocol):
    def get(self, key: str) -> bytes | None: ...


@dataclass
class BatchOutcome:
    """What one batch changed: encoded states to write, transitions, counts."""

    encoded: dict[str, bytes] = field(default_factory=dict)
    transitions: list[StockStatus] = field(default_factory=list)
    restocks: Counter[str] = field(default_factory=Counter)  # by store_id
    applied: Counter[Applied] = field(default_factory=Counter)
    max_ts: int | None = None


def apply_changes(
    store: StateStore, changes: Iterable[StockChange], rules: InventoryRules
) -> BatchOutcome:
    """Apply a batch of stock changes (one partition's) to the states in `store`.

    Each touched key is decoded once and encoded once. Status is evaluated at the key's
    latest ts; a status change is reported as a transition.
    """
    out = BatchOutcome()
    by_key: dict[str, list[StockChange]] = defaultdict(list)
    for change in changes:
        by_key[stock_key(change)].append(change)
        if out.max_ts is None or change["ts"] > out.max_ts:
            out.max_ts = change["ts"]
    for key, key_changes in by_key.items():
        raw = store.get(key)
        state = StockState.decode(raw) if raw is not None else StockState()
        seen = {item[0] for item in (*state.changes, *state.pending)}
        changed = raw is None
        for change in key_changes:
            result = state.apply(change, seen, rules)
            out.applied[result] += 1
            changed = changed or result not in _NO_EFFECT
            if change["kind"] == "restock" and result is not Applied.DUPLICATE:
                out.restocks[change["store_id"]] += 1
        if not changed:
            continue
        state.compact(rules)
        assert state.max_ts is not None
        transition = reevaluate(key, state, state.max_ts, rules)
        if transition is not None:
            out.transitions.append(transition)
        out.encoded[key] = state.encode()
    return out


def reevaluate(
    key: str, state: StockState, now_ms: int, rules: InventoryRules
) -> StockStatus | None:
    """Set the state's status as of now_ms; the transition if it changed."""
    previous = state.status
    state.status = state.evaluate(now_ms, rules)
    if state.status is previous:
        return None
    return StockStatus.of(key, state, now_ms, rules, previous)


class StockIndex:
    """The keys that are not OK (low or out), for the API, the gauges and the tick."""

    def __init__(self) -> None:
        self._by_store: dict[str, dict[str, StockStatus]] = defaultdict(dict)

    def update(self, status: StockStatus) -> None:
        skus = self._by_store[status.store_id]
        if status.status is Status.OK:
            skus.pop(status.sku, None)
            if not skus:
                del self._by_store[status.store_id]
        else:
            skus[status.sku] = status

    def get(self, store_id: str, sku: str) -> StockStatus | None:
        skus = self._by_store.get(store_id)
        return None if skus is None else skus.get(sku)

    def clear(self) -> None:
        self._by_store.clear()

    def flagged(self, store_id: str, statuses: Iterable[Status]) -> list[StockStatus]:
        wanted = set(statuses)
        found = [s for s in self._by_store.get(store_id, {}).values() if s.status in wanted]
        return sorted(found, key=StockStatus.urgency)

    def all(self, status: Status) -> list[StockStatus]:
        return [s for skus in self._by_store.values() for s in skus.values() if s.status is status]

    def counts(self) -> Counter[tuple[str, Status]]:
        return Counter(
            (store_id, s.status) for store_id, skus in self._by_store.items() for s in skus.values()
        )
