"""Available stock per store x SKU in event time, sales velocity and time to stock-out.

Pure logic, no Faust (the agent is streams/inventory/agent.py). The rules
(docs/architecture.md, docs/contract.md §3), independent of arrival order:

- available = the latest `snapshot` by ts (ties: the larger value) plus every change with
  a ts after it. Without a snapshot the base is 0 and changes count from the first
  inventory event's ts on (snapshot, restock or adjust: the smallest ts seen so far).
- hold, release and return changes that come before tracking starts are kept pending: an
  inventory event with an earlier ts may still arrive and make them count.
- every change is idempotent by its `id`.

Per key only what a late event still needs is kept, in three tiers by event time behind
the key's latest ts:

- the dedup horizon: every distinct change with its id (at most `max_changes`), so that a
  re-sent change counts once;
- the snapshot horizon (6 hours by default): the changes since the applied snapshot as
  compact entries (ts, qty) without ids, changes at the same ts added up. A snapshot newer
  than the applied one is applied exactly: its value plus every kept change after it.
  Beyond `max_entries` adjacent entries are merged (qty added up, the later ts kept, and
  the span they cover remembered), where the span is shortest for its age: recent changes
  keep their ts longest, as a snapshot is more likely a little late than hours late;
- older: a `base` (the applied snapshot's value plus the changes after it that no longer
  fit) and a fold line, the latest ts folded into it.

So the result is exact, whatever the arrival order, while changes arrive less than the
dedup horizon late and snapshots less than the snapshot horizon late. Beyond that: a
snapshot behind the fold line or inside a merged span cannot be applied exactly; it is
refused, counted per key (`inexact_snapshots`, shown by the HTTP API) and logged. A change
behind the fold line is added to the base without dedup, and a pending change past the
snapshot horizon (or past the cap) is forgotten (all counted in `BatchOutcome.applied`).

Velocity is an exponentially weighted rate of held units in event time: the decayed sum
S(T) = sum(qty_i * exp(-(T - ts_i) / tau)) of every hold, and units per minute = S / tau.
The sum does not depend on the order holds arrive in. "Running low" = available > 0 and
available / velocity <= `low_stock_minutes`; out of stock = available <= 0.

Slow-moving (滞销) = stock on hand, not low, and either no sale for `slow_moving_minutes`
of event time since the last hold (or since tracking started, if it never sold), or at
the recent rate the stock would last beyond `slow_cover_hours` (selling far below the rate
that clears it). The cover rule has hysteresis: a slow SKU stays slow until its cover falls
below half the limit, so a trickle of sales around the line does not flap. Quiet keys turn
slow as event time moves on without them: `quiet_due_ms` says when (the agent's tick).
"""

from __future__ import annotations

import enum
import logging
import math
import struct
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Protocol

import orjson

from streams.inventory.changes import INVENTORY_KINDS, StockChange, stock_key

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
    "quiet_due",
    "quiet_since_of",
    "reevaluate",
    "split_key",
    "status_of",
]

log = logging.getLogger(__name__)

MS_PER_MIN = 60_000

Change = tuple[str, int, int]  # id, ts (ms), qty
# A compact change: ts (ms), qty, span (ms): ts minus the earliest ts merged into it (0: one ts)
Entry = tuple[int, int, int]


class Status(enum.StrEnum):
    OK = "ok"
    LOW = "low"
    OUT = "out"
    SLOW = "slow"


# First byte of an encoded state: lets a table scan skip the (many) keys that are fine.
_STATUS_BYTE = {Status.OK: b"o", Status.LOW: b"l", Status.OUT: b"x", Status.SLOW: b"s"}
# An OK key with stock: `q` and its quiet-since ts (8 bytes) before the JSON, so a load scan
# learns when it turns slow without decoding it.
_QUIET_OK = b"q"
_QUIET = struct.Struct(">q")
_BYTE_STATUS = {byte[0]: status for status, byte in _STATUS_BYTE.items()} | {
    _QUIET_OK[0]: Status.OK
}


@dataclass(frozen=True)
class InventoryRules:
    low_stock_minutes: float = 30.0
    velocity_half_life_ms: int = 5 * MS_PER_MIN
    dedup_horizon_ms: int = 15 * MS_PER_MIN  # changes are kept with their ids this long
    snapshot_horizon_ms: int = 6 * 60 * MS_PER_MIN  # and as compact entries this long
    max_changes: int = 2_000  # changes with ids kept per key (the oldest become entries)
    max_entries: int = 500  # compact entries kept per key (beyond: adjacent ones merge)
    slow_moving_minutes: float = 60.0  # no sale this long (event time) with stock: slow
    slow_cover_hours: float = 7 * 24.0  # or the stock lasts longer than this at the rate

    def __post_init__(self) -> None:
        if self.snapshot_horizon_ms < self.dedup_horizon_ms:
            raise ValueError("the snapshot horizon must not be shorter than the dedup horizon")

    @property
    def tau_ms(self) -> float:
        return self.velocity_half_life_ms / math.log(2)


class Applied(enum.Enum):
    COUNTED = enum.auto()
    LATE = enum.auto()  # counted into the base: at or behind the fold line
    PENDING = enum.auto()  # before tracking starts
    BEFORE_SNAPSHOT = enum.auto()  # at or before the applied snapshot: changes nothing
    DUPLICATE = enum.auto()
    STALE_SNAPSHOT = enum.auto()  # not newer than the applied snapshot
    # newer than the applied one, but behind the fold line or inside a merged span: refused
    INEXACT_SNAPSHOT = enum.auto()


# Results that leave a state as it was: no table write needed.
_NO_EFFECT = frozenset({Applied.DUPLICATE, Applied.STALE_SNAPSHOT})


@dataclass(slots=True)
class StockState:
    """One store x SKU.

    `changes` holds every distinct change of the last dedup horizon (at most
    `max_changes`), whether it counts, is pending or is behind the snapshot: their ids
    make re-sent changes idempotent. `entries` (sorted by ts) holds the older changes since
    the applied snapshot, counting or pending, up to the snapshot horizon. Changes at or
    before `fold_ts` are in `base` (or behind the snapshot, or forgotten); after it they
    count when inside the tracked region.
    """

    snapshot_ts: int | None = None
    snapshot_value: int = 0
    start_ts: int | None = None  # first inventory event's ts
    base: int = 0
    fold_ts: int | None = None
    max_ts: int | None = None
    rate: float = 0.0  # decayed sum of held units at rate_ts
    rate_ts: int = 0
    status: Status = Status.OK
    changes: list[Change] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    inexact_snapshots: int = 0  # snapshots refused as not exactly applicable
    inexact_ts: int | None = None  # the last one's ts
    # earliest ts of tracking (snapshot or inventory change): a SKU unsold since is quiet
    # since then; later snapshots are no sale and do not reset that
    tracked_since: int | None = None

    # --- reading ----------------------------------------------------------------------
    @property
    def tracked(self) -> bool:
        return self.snapshot_ts is not None or self.start_ts is not None

    def _in_region(self, ts: int) -> bool:
        """Whether a change at ts belongs to the stock (ignoring the fold)."""
        if self.snapshot_ts is not None:
            return ts > self.snapshot_ts
        return self.start_ts is not None and ts >= self.start_ts

    def _counts(self, ts: int) -> bool:
        return (self.fold_ts is None or ts > self.fold_ts) and self._in_region(ts)

    @property
    def available(self) -> int:
        total = self.base + sum(qty for _, ts, qty in self.changes if self._counts(ts))
        if self.entries:
            # all after the fold line; those before the first counting one are pending
            total += sum(qty for _, qty, _ in self.entries[self._first_counting() :])
        return total

    @property
    def pending(self) -> list[Change]:
        """Changes with ids waiting for tracking to start (at an earlier inventory event)."""
        if self.snapshot_ts is not None:
            return []
        return [item for item in self.changes if not self._in_region(item[1])]

    @property
    def pending_count(self) -> int:
        """How many changes wait for tracking to start, with ids or as entries."""
        return len(self.pending) + self._first_counting()

    def inexact_reason(self, ts: int) -> str | None:
        """Why a snapshot at ts, newer than the applied one, cannot be applied exactly."""
        if self.fold_ts is not None and ts < self.fold_ts:
            return f"the changes up to ts {self.fold_ts} are folded into one sum"
        for end, _, span in self.entries:
            if end - span <= ts < end:
                return f"the changes from ts {end - span} to {end} are merged"
        return None

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

    @property
    def last_sale_ts(self) -> int | None:
        """Event time of the latest hold (an order), None if the SKU never sold."""
        return self.rate_ts if self.rate > 0.0 else None

    def quiet_since_ms(self) -> int | None:
        """Since when, in event time, the SKU has stock and no sale: its latest sale or the
        start of tracking (None: no stock or no tracking, it cannot turn slow)."""
        if not self.tracked or self.available <= 0:
            return None
        started = self.tracked_since
        if started is None:  # a state saved before `tracked_since` was kept
            started = self.snapshot_ts if self.start_ts is None else self.start_ts
        assert started is not None
        return max(started, self.last_sale_ts or started)

    def quiet_due_ms(self, rules: InventoryRules) -> int | None:
        """When, in event time, the SKU turns slow if nothing sells meanwhile."""
        return quiet_due(self.quiet_since_ms(), rules)

    def evaluate(self, now_ms: int, rules: InventoryRules) -> Status:
        if not self.tracked:
            return Status.OK
        if self.available <= 0:
            return Status.OUT
        minutes = self.minutes_to_stockout(now_ms, rules)
        if minutes is not None and minutes <= rules.low_stock_minutes:
            return Status.LOW
        due = self.quiet_due_ms(rules)
        if due is not None and now_ms >= due:
            return Status.SLOW
        # cover in minutes (None: nothing sells); a slow SKU recovers below half the limit
        cover_limit = rules.slow_cover_hours * 60 / (2 if self.status is Status.SLOW else 1)
        if minutes is not None and minutes > cover_limit:
            return Status.SLOW
        return Status.OK

    # --- applying ---------------------------------------------------------------------
    def apply(self, change: StockChange, seen: set[str], rules: InventoryRules) -> Applied:
        """Apply one change; `seen` holds the ids of `changes` (updated here)."""
        change_id, ts, kind, qty = change["id"], change["ts"], change["kind"], change["qty"]
        if change_id in seen:
            return Applied.DUPLICATE
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts = ts
        if kind in INVENTORY_KINDS:
            self._tracked_at(ts)  # even a stale snapshot: it says stock was known then
        if kind == "snapshot":
            return self._snapshot(ts, qty)
        seen.add(change_id)
        self.changes.append((change_id, ts, qty))
        if kind == "hold":
            self._add_sale(-qty, ts, rules)
        starts = self.snapshot_ts is None and (self.start_ts is None or ts < self.start_ts)
        if kind in INVENTORY_KINDS and starts:
            self._start(ts)
        if not self._in_region(ts):
            return Applied.PENDING if self.snapshot_ts is None else Applied.BEFORE_SNAPSHOT
        if self.fold_ts is not None and ts <= self.fold_ts:
            self.base += qty
            return Applied.LATE
        return Applied.COUNTED

    def _start(self, ts: int) -> None:
        """Tracking starts (earlier) at ts. Kept changes and entries from ts on that were
        pending now count; changes behind the fold line go into the base."""
        previous, self.start_ts = self.start_ts, ts
        if self.fold_ts is None:
            return
        for _, item_ts, qty in self.changes[:-1]:
            newly = previous is None or item_ts < previous
            if ts <= item_ts <= self.fold_ts and newly:
                self.base += qty

    def _snapshot(self, ts: int, value: int) -> Applied:
        if self.snapshot_ts is not None and (ts, value) <= (self.snapshot_ts, self.snapshot_value):
            return Applied.STALE_SNAPSHOT
        if ts == self.inexact_ts:
            return Applied.DUPLICATE  # refused already (another at its ts would be, too)
        if self.inexact_reason(ts) is not None:
            self.inexact_snapshots += 1
            self.inexact_ts = ts
            return Applied.INEXACT_SNAPSHOT
        self.snapshot_ts, self.snapshot_value, self.base = ts, value, value
        # the entries at or before it are in its value; a later snapshot must be newer
        del self.entries[: bisect_right(self.entries, ts, key=_ts)]
        return Applied.COUNTED

    def _tracked_at(self, ts: int) -> None:
        """The earliest inventory event's ts, whatever the order they arrive in."""
        if self.tracked_since is None or ts < self.tracked_since:
            self.tracked_since = ts

    def _add_sale(self, units: int, ts: int, rules: InventoryRules) -> None:
        if ts >= self.rate_ts or self.rate == 0.0:
            decay = math.exp(-(ts - self.rate_ts) / rules.tau_ms) if self.rate else 0.0
            self.rate = self.rate * decay + units
            self.rate_ts = ts
        else:
            self.rate += units * math.exp(-(self.rate_ts - ts) / rules.tau_ms)

    # --- bounding ---------------------------------------------------------------------
    def compact(self, rules: InventoryRules) -> None:
        """Changes behind the dedup horizon (or past `max_changes`) become entries, entries
        behind the snapshot horizon are folded, and entries past `max_entries` merged."""
        if self.max_ts is None or not (self.changes or self.entries):
            return
        self._changes_to_entries(rules)
        self._fold(bisect_right(self.entries, self.max_ts - rules.snapshot_horizon_ms, key=_ts))
        self._merge_entries(rules.max_entries)

    def _changes_to_entries(self, rules: InventoryRules) -> None:
        assert self.max_ts is not None
        line = self.max_ts - rules.dedup_horizon_ms
        changes = self.changes
        changes.sort(key=_change_ts)
        cut = bisect_right(changes, line, key=_change_ts)
        if len(changes) - cut > rules.max_changes:
            cut = len(changes) - rules.max_changes
            while cut < len(changes) and changes[cut][1] == changes[cut - 1][1]:
                cut += 1
        if not cut:
            return
        moved = [(ts, qty, 0) for _, ts, qty in changes[:cut] if self._needed(ts)]
        del changes[:cut]
        entries = self.entries
        if moved and entries and moved[0][0] < entries[-1][0]:
            moved, entries = sorted(entries + moved), []  # a late change: sort them all
        for ts, qty, span in moved:
            if entries and entries[-1][0] == ts:
                _, total, widest = entries[-1]
                entries[-1] = (ts, total + qty, max(widest, span))
            else:
                entries.append((ts, qty, span))
        self.entries = entries

    def _needed(self, ts: int) -> bool:
        """Whether a change at ts may count, now or later: not in the base (nor forgotten)
        and not in the applied snapshot's value."""
        folded = self.fold_ts is not None and ts <= self.fold_ts
        return not folded and (self.snapshot_ts is None or ts > self.snapshot_ts)

    def _fold(self, cut: int) -> None:
        """The oldest `cut` entries go into the base if they count (else are forgotten);
        the fold line moves past them."""
        if not cut:
            return
        folded = self.entries[:cut]
        self.base += sum(qty for ts, qty, _ in folded if self._counts(ts))
        last = folded[-1][0]
        self.fold_ts = last if self.fold_ts is None else max(self.fold_ts, last)
        del self.entries[:cut]

    def _merge_entries(self, cap: int) -> None:
        """Past the cap, merge adjacent counting entries down to 3/4 of it (so that a busy
        key does not merge on every batch). Pending entries are never merged (tracking may
        still start between them): when only they are left, the oldest are forgotten."""
        if len(self.entries) <= cap:
            return
        target = cap - cap // 4
        while len(self.entries) > target:
            first = self._first_counting()
            if len(self.entries) - first < 2:
                self._fold(len(self.entries) - target)
            else:
                self.entries = self._merged(first, len(self.entries) - target)

    def _merged(self, first: int, wanted: int) -> list[Entry]:
        """The entries with up to `wanted` disjoint pairs from `first` on merged: the pairs
        whose span would be the shortest relative to their age."""
        assert self.max_ts is not None
        latest, entries = self.max_ts, self.entries

        def start(i: int) -> int:
            # a late change may have made an entry inside the next one's span
            return min(_start_of(entries[i]), _start_of(entries[i + 1]))

        def cost(i: int) -> float:
            end = entries[i + 1][0]
            return (end - start(i)) / (latest - end + 1)

        pairs: set[int] = set()
        for i in sorted(range(first, len(entries) - 1), key=cost):
            if i - 1 not in pairs and i + 1 not in pairs:
                pairs.add(i)
                if len(pairs) == wanted:
                    break
        merged: list[Entry] = []
        i = 0
        while i < len(entries):
            if i in pairs:
                (_, qty, _), (end, later_qty, _) = entries[i], entries[i + 1]
                merged.append((end, qty + later_qty, end - start(i)))
                i += 2
            else:
                merged.append(entries[i])
                i += 1
        return merged

    def _first_counting(self) -> int:
        """Index of the first entry that counts: those before it are pending."""
        if self.snapshot_ts is not None:
            return 0
        if self.start_ts is None:
            return len(self.entries)
        return bisect_left(self.entries, self.start_ts, key=_ts)

    # --- encoding for the table (first byte: status) ----------------------------------
    def encode(self) -> bytes:
        quiet_since = self.quiet_since_ms() if self.status is Status.OK else None
        header = (
            _STATUS_BYTE[self.status]
            if quiet_since is None
            else _QUIET_OK + _QUIET.pack(quiet_since)
        )
        return header + orjson.dumps(
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
                _flat(self.entries),
                self.inexact_snapshots,
                self.inexact_ts,
                self.tracked_since,
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> StockState:
        fields = orjson.loads(raw[1 + _QUIET.size if raw[0] == _QUIET_OK[0] else 1 :])
        # states written before entries existed: their base and fold line mean the same;
        # before tracked_since: None (the quiet clock falls back to the tracking start)
        fields += [[], 0, None, None][len(fields) - _FIELDS_BEFORE_ENTRIES :]
        (snapshot_ts, snapshot_value, start_ts, base, fold_ts, max_ts, rate, rate_ts,
         changes, entries, inexact_snapshots, inexact_ts, tracked_since) = fields  # fmt: skip
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
            _unflat(entries),
            inexact_snapshots,
            inexact_ts,
            tracked_since,
        )


_FIELDS_BEFORE_ENTRIES = 9


def _change_ts(item: Change) -> int:
    return item[1]


def _ts(entry: Entry) -> int:
    return entry[0]


def _start_of(entry: Entry) -> int:
    return entry[0] - entry[2]


def _flat(entries: list[Entry]) -> list[int]:
    """Entries encoded as one list: ts (as the step from the previous one), qty, span."""
    flat: list[int] = []
    previous = 0
    for ts, qty, span in entries:
        flat += (ts - previous, qty, span)
        previous = ts
    return flat


def _unflat(flat: list[int]) -> list[Entry]:
    return list(zip(accumulate(flat[0::3]), flat[1::3], flat[2::3], strict=True))


def status_of(raw: bytes) -> Status:
    """The status of an encoded state, without decoding the rest."""
    return _BYTE_STATUS[raw[0]]


def quiet_since_of(raw: bytes) -> int | None:
    """The quiet-since ts of an encoded OK state with stock, without decoding the rest;
    None for other states (and for OK states written before it was kept: decode those)."""
    return _QUIET.unpack_from(raw, 1)[0] if raw[0] == _QUIET_OK[0] else None


def quiet_due(quiet_since_ms: int | None, rules: InventoryRules) -> int | None:
    """When a SKU quiet since then turns slow."""
    if quiet_since_ms is None:
        return None
    return quiet_since_ms + round(rules.slow_moving_minutes * MS_PER_MIN)


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
    last_sale_ts: int | None = None  # event time of the latest sale, None: never sold

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
            state.last_sale_ts,
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
            "last_sale_ts": self.last_sale_ts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StockStatus:
        return cls(
            data["store_id"],
            data["sku"],
            Status(data["status"]),
            None,
            data["available"],
            data["velocity_per_min"],
            data["minutes_to_stockout"],
            data["ts"],
            data.get("last_sale_ts"),
        )

    def urgency(self) -> tuple[int, float, float]:
        """Sort key, most urgent first: out (most oversold, then fastest selling), then
        low by minutes to stock-out, then slow (never sold, then longest unsold; most
        stock first)."""
        if self.status is Status.OUT:
            return 0, float(self.available), -self.velocity_per_min
        if self.status is Status.SLOW:
            return 2, float(self.last_sale_ts or -math.inf), -float(self.available)
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
    quiet_due: dict[str, int | None] = field(default_factory=dict)  # of each key written
    restocks: Counter[str] = field(default_factory=Counter)  # by store_id
    applied: Counter[Applied] = field(default_factory=Counter)
    max_ts: int | None = None


def apply_changes(
    store: StateStore,
    changes: Iterable[StockChange],
    rules: InventoryRules,
    now_ms: int | None = None,
) -> BatchOutcome:
    """Apply a batch of stock changes (one partition's) to the states in `store`.

    Each touched key is decoded once and encoded once (not at all if nothing changed).
    Status is evaluated at the key's latest ts, or at `now_ms` (the partition's stream
    time) if that is later; a status change is reported as a transition.
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
        seen = {item[0] for item in state.changes}
        changed = raw is None
        for change in key_changes:
            tracked_since = state.tracked_since
            result = state.apply(change, seen, rules)
            out.applied[result] += 1
            if result is Applied.INEXACT_SNAPSHOT:
                _warn_inexact(state, change)
            # a stale snapshot changes no stock but may move the start of tracking back
            changed = changed or result not in _NO_EFFECT or state.tracked_since != tracked_since
            if change["kind"] == "restock" and result is not Applied.DUPLICATE:
                out.restocks[change["store_id"]] += 1
        if not changed:
            continue
        state.compact(rules)
        assert state.max_ts is not None
        at_ms = state.max_ts if now_ms is None else max(now_ms, state.max_ts)
        transition = reevaluate(key, state, at_ms, rules)
        if transition is not None:
            out.transitions.append(transition)
        out.encoded[key] = state.encode()
        out.quiet_due[key] = state.quiet_due_ms(rules) if state.status is Status.OK else None
    return out


def _warn_inexact(state: StockState, snapshot: StockChange) -> None:
    ts = snapshot["ts"]
    assert state.max_ts is not None
    log.warning(
        "inventory: store %s sku %s: snapshot at ts %d (%d ms behind the latest change) "
        "refused, it cannot be applied exactly: %s",
        snapshot["store_id"],
        snapshot["sku"],
        ts,
        state.max_ts - ts,
        state.inexact_reason(ts),
    )


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
    """The keys that are not OK (low, out or slow), for the API, the gauges and the tick."""

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
