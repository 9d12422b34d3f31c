"""Inventory per store x SKU (streams/inventory/stock.py): the rules of docs/architecture.md, the
velocity and time to stock-out, status transitions, bounded state, any arrival order."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.inventory.changes import StockChange
from streams.inventory.stock import (
    Applied,
    InventoryRules,
    Status,
    StockIndex,
    StockState,
    StockStatus,
    apply_changes,
    quiet_since_of,
    status_of,
)

MIN = 60_000
T0 = 1_700_000_000_000
RULES = InventoryRules()
_ids = itertools.count()


def change(kind: str, ts: int, qty: int, id: str | None = None, sku: str = "A",
           store: str = "s1") -> StockChange:  # fmt: skip
    return StockChange(
        id=id or f"{kind}-{next(_ids)}", store_id=store, sku=sku, ts=ts, kind=kind, qty=qty
    )


def snapshot(ts: int, available: int, **kw: Any) -> StockChange:
    return change("snapshot", ts, available, **kw)


def restock(ts: int, qty: int, **kw: Any) -> StockChange:
    return change("restock", ts, qty, **kw)


def adjust(ts: int, delta: int, **kw: Any) -> StockChange:
    return change("adjust", ts, delta, **kw)


def hold(ts: int, qty: int, **kw: Any) -> StockChange:
    return change("hold", ts, -qty, **kw)


def release(ts: int, qty: int, **kw: Any) -> StockChange:
    return change("release", ts, qty, **kw)


def returned(ts: int, qty: int, **kw: Any) -> StockChange:
    return change("return", ts, qty, **kw)


class Table(dict[str, bytes]):
    """What the agent gives apply_changes: a mapping of encoded states."""

    def run(self, changes: list[StockChange], rules: InventoryRules = RULES,
            batch: int = 1) -> list[StockStatus]:  # fmt: skip
        """Apply in batches, writing back like the agent; returns the transitions."""
        transitions = []
        for start in range(0, len(changes), batch):
            outcome = apply_changes(self, changes[start : start + batch], rules)
            self.update(outcome.encoded)
            transitions.extend(outcome.transitions)
        return transitions

    def state(self, key: str = "s1|A") -> StockState:
        return StockState.decode(self[key])


def final(changes: list[StockChange], rules: InventoryRules = RULES, batch: int = 1) -> StockState:
    table = Table()
    table.run(changes, rules, batch)
    return table.state(f"{changes[0]['store_id']}|{changes[0]['sku']}")


# --- the contract's rules ----------------------------------------------------------


def test_snapshot_sets_restock_and_adjust_add() -> None:
    state = final([snapshot(T0, 100), restock(T0 + 1, 50), adjust(T0 + 2, -3)])
    assert state.tracked
    assert state.available == 147


def test_hold_release_and_return() -> None:
    state = final(
        [snapshot(T0, 10), hold(T0 + 1, 4), release(T0 + 2, 4), hold(T0 + 3, 2),
         returned(T0 + 4, 1)]
    )  # fmt: skip
    assert state.available == 10 - 4 + 4 - 2 + 1


def test_tracking_starts_at_the_first_inventory_event() -> None:
    table = Table()
    table.run([hold(T0, 5)])
    untracked = table.state()
    assert not untracked.tracked
    assert untracked.status is Status.OK  # no negative stock before tracking starts
    assert untracked.pending == [(untracked.pending[0][0], T0, -5)]
    table.run([restock(T0 + 10, 20), hold(T0 + 11, 3)])
    assert table.state().available == 17


def test_changes_count_from_the_first_inventory_event_in_event_time() -> None:
    # the hold arrives first but happened after the restock: it counts
    assert final([hold(T0 + 5, 3), restock(T0, 10)]).available == 7
    # the hold happened before the restock (before tracking): it does not
    assert final([hold(T0 - 5, 3), restock(T0, 10)]).available == 10
    # an earlier adjust moves the start back: the pending hold now counts
    state = final([hold(T0 - 5, 3), restock(T0, 10), adjust(T0 - 9, 2)])
    assert state.available == 9
    assert state.start_ts == T0 - 9
    assert state.pending == []


def test_a_snapshot_counts_changes_after_it_only() -> None:
    # changes at or before the snapshot's ts are in the snapshot already
    state = final([restock(T0, 10), hold(T0 + 1, 2), hold(T0 + 5, 1), snapshot(T0 + 5, 40),
                   hold(T0 + 6, 4)])  # fmt: skip
    assert state.available == 36
    assert state.snapshot_ts == T0 + 5


def test_a_snapshot_older_than_the_applied_one_is_ignored() -> None:
    state = final([snapshot(T0 + 10, 50), hold(T0 + 11, 1), snapshot(T0 + 5, 999)])
    assert state.available == 49
    assert state.snapshot_ts == T0 + 10


def test_a_late_snapshot_newer_than_the_applied_one_rebases() -> None:
    # the snapshot at T0+20 arrives last: the hold at T0+15 is inside it, T0+25 is not
    state = final([snapshot(T0, 50), hold(T0 + 15, 5), hold(T0 + 25, 2), snapshot(T0 + 20, 30)])
    assert state.available == 28


def test_a_snapshot_later_than_the_dedup_horizon_still_applies() -> None:
    """Seen in practice: the snapshot reached the worker 20 minutes of event time after the
    orders that followed it; the key must show its stock-out."""
    table = Table()
    table.run([snapshot(T0 - 60 * MIN, 100)] + [hold(T0 + i * MIN, 1) for i in range(1, 21)])
    outcome = apply_changes(table, [snapshot(T0, 5)], RULES)
    assert outcome.applied[Applied.COUNTED] == 1
    (out,) = outcome.transitions
    assert (out.status, out.available) == (Status.OUT, 5 - 20)


def test_snapshots_at_the_same_ts_resolve_by_value_in_any_order() -> None:
    a, b = snapshot(T0, 7), snapshot(T0, 9)
    assert final([a, b]).available == final([b, a]).available == 9


def test_each_change_counts_once_by_id() -> None:
    h = hold(T0 + 1, 2, id="hold:o1:A")
    r = release(T0 + 2, 2, id="release:o1:A")
    assert final([snapshot(T0, 10), h, h, r, h, r]).available == 10
    # re-sent in a later batch, after the state went through its encoding
    table = Table()
    table.run([snapshot(T0, 10), h])
    table.run([h, h])
    assert table.state().available == 8
    # pending changes are deduplicated too
    assert final([h, h, restock(T0, 10)]).available == 8


def test_a_restock_resent_counts_once_and_restocks_are_counted_per_store() -> None:
    r = restock(T0 + 1, 5)
    outcome = apply_changes(Table(), [snapshot(T0, 0), r, r, restock(T0 + 2, 1)], RULES)
    assert outcome.restocks == {"s1": 2}
    assert outcome.applied[Applied.DUPLICATE] == 1


def test_keys_are_independent() -> None:
    table = Table()
    table.run(
        [snapshot(T0, 5, sku="A"), snapshot(T0, 8, sku="B", store="s2"), hold(T0 + 1, 5, sku="A")],
        batch=3,
    )
    assert table.state("s1|A").available == 0
    assert table.state("s2|B").available == 8


def test_nothing_is_written_for_a_batch_of_duplicates() -> None:
    table = Table()
    h = hold(T0 + 1, 1)
    table.run([snapshot(T0, 10), h])
    assert apply_changes(table, [h], RULES).encoded == {}


# --- velocity, time to stock-out, status -------------------------------------------


def test_velocity_of_a_steady_rate_and_its_decay() -> None:
    rules = InventoryRules(velocity_half_life_ms=5 * MIN)
    state = StockState()
    seen: set[str] = set()
    state.apply(snapshot(T0, 10_000), seen, rules)
    for second in range(0, 60 * 60, 6):  # 2 units every 6 s = 20 per minute, for an hour
        state.apply(hold(T0 + second * 1000, 2), seen, rules)
    end = T0 + 3600 * 1000
    assert state.velocity_per_min(end, rules) == pytest.approx(20, rel=0.03)
    assert state.velocity_per_min(end + 5 * MIN, rules) == pytest.approx(10, rel=0.03)
    minutes = state.minutes_to_stockout(end, rules)
    assert minutes == pytest.approx(state.available / 20, rel=0.03)


def test_status_ok_low_out_and_back_with_transitions() -> None:
    rules = InventoryRules(low_stock_minutes=30, velocity_half_life_ms=5 * MIN)
    table = Table()
    assert table.run([snapshot(T0, 100, id="snap")], rules) == []
    # 10 units a minute for 10 minutes: 0 -> ~6.5/min EWMA, 0 left after
    sales = [hold(T0 + i * 6_000, 1) for i in range(1, 101)]
    transitions = table.run(sales, rules)
    assert [(t.previous, t.status) for t in transitions] == [
        (Status.OK, Status.LOW),
        (Status.LOW, Status.OUT),
    ]
    low, out = transitions
    assert low.store_id == "s1" and low.sku == "A"
    assert low.available > 0 and low.minutes_to_stockout is not None
    assert low.minutes_to_stockout <= 30
    assert low.velocity_per_min > 0
    assert out.available == 0 and out.minutes_to_stockout == 0
    assert out.ts == T0 + 100 * 6_000
    (back,) = table.run([restock(T0 + 11 * MIN, 10_000)], rules)
    assert (back.previous, back.status, back.available) == (Status.OUT, Status.OK, 10_000)


def test_oversold_is_out_of_stock_with_negative_available() -> None:
    table = Table()
    (out,) = table.run([snapshot(T0, 1), hold(T0 + 1, 3)], batch=2)
    assert (out.status, out.available) == (Status.OUT, -2)


def test_untracked_keys_are_never_out() -> None:
    assert Table().run([hold(T0, 3)]) == []


def test_low_needs_sales_and_recovers_when_they_stop() -> None:
    rules = InventoryRules(low_stock_minutes=30)
    state = StockState()
    seen: set[str] = set()
    state.apply(snapshot(T0, 5), seen, rules)
    assert state.evaluate(T0, rules) is Status.OK  # few units but no sales: not low
    state.apply(hold(T0 + 1, 1), seen, rules)
    assert state.evaluate(T0 + 1, rules) is Status.LOW
    # the rate decayed: not low any more, but slow (4 units would now last for weeks)
    assert state.evaluate(T0 + 50 * MIN, rules) is Status.SLOW


def sold_out_raw(rules: InventoryRules) -> bytes:
    return apply_changes({}, [snapshot(T0, 0)], rules).encoded["s1|A"]


def test_slow_moving_unsold_for_a_while_or_far_below_the_rate_that_clears_it() -> None:
    rules = InventoryRules(
        slow_moving_minutes=60, slow_cover_hours=24, velocity_half_life_ms=5 * MIN
    )
    seen: set[str] = set()
    never_sold = StockState()
    never_sold.apply(snapshot(T0, 100), seen, rules)
    assert never_sold.quiet_due_ms(rules) == T0 + 60 * MIN
    assert never_sold.evaluate(T0 + 59 * MIN, rules) is Status.OK
    assert never_sold.evaluate(T0 + 60 * MIN, rules) is Status.SLOW
    # one unit sold a minute ago: ~0.14 units/min, 150 units last ~18 hours (< 24): fine,
    # and it moves the quiet clock
    state = StockState()
    state.apply(snapshot(T0, 151), set(), rules)
    state.apply(hold(T0 + MIN, 1), set(), rules)
    assert state.quiet_due_ms(rules) == T0 + 61 * MIN
    assert state.evaluate(T0 + MIN, rules) is Status.OK
    # hysteresis: a slow SKU stays slow until its cover is under half the limit (12 hours)
    state.status = Status.SLOW
    assert state.evaluate(T0 + MIN, rules) is Status.SLOW
    # half an hour later the rate has decayed 64-fold: the cover is weeks, far beyond 24 hours
    state.status = Status.OK
    assert state.evaluate(T0 + 31 * MIN, rules) is Status.SLOW
    # a later snapshot is no sale: the quiet clock keeps running from the first one, in
    # either arrival order (the earlier one, stale for the stock, still moves it back)
    never_sold.apply(snapshot(T0 + 30 * MIN, 100), seen, rules)
    assert never_sold.quiet_due_ms(rules) == T0 + 60 * MIN
    table: dict[str, bytes] = {}
    for first in (snapshot(T0 + 30 * MIN, 100), snapshot(T0, 100)):
        table.update(apply_changes(table, [first], rules).encoded)
    late_first = StockState.decode(table["s1|A"])
    assert late_first.quiet_due_ms(rules) == T0 + 60 * MIN
    # an OK key's encoding tells since when it is quiet without being decoded (load scans)
    raw = StockState.decode(table["s1|A"]).encode()
    assert status_of(raw) is Status.OK and quiet_since_of(raw) == T0
    assert StockState.decode(raw) == StockState.decode(table["s1|A"])
    assert quiet_since_of(sold_out_raw(rules)) is None
    sold_out = StockState()
    sold_out.apply(snapshot(T0, 0), set(), rules)
    assert sold_out.quiet_due_ms(rules) is None


# --- bounded state -----------------------------------------------------------------


def test_old_changes_become_entries_then_fold_into_the_base() -> None:
    rules = InventoryRules(dedup_horizon_ms=10 * MIN, snapshot_horizon_ms=20 * MIN)
    changes = [snapshot(T0, 1000)] + [hold(T0 + i * MIN, 1) for i in range(1, 31)]
    state = final(changes, rules, batch=5)
    assert state.available == 970
    assert [ts for _, ts, _ in state.changes] == [T0 + i * MIN for i in range(21, 31)]
    assert state.entries == [(T0 + i * MIN, -1, 0) for i in range(11, 21)]
    assert state.fold_ts == T0 + 10 * MIN
    assert state.base == 990


def test_changes_and_entries_are_capped_per_key() -> None:
    rules = InventoryRules(max_changes=50, max_entries=20)
    changes = [snapshot(T0, 1000)] + [hold(T0 + i, 1) for i in range(1, 201)]
    state = final(changes, rules, batch=20)
    assert state.available == 800
    assert len(state.changes) <= 50
    assert len(state.entries) <= 20
    assert state.fold_ts is None  # merged, not folded: a snapshot between them is refused


def test_entries_at_the_same_ts_add_up() -> None:
    rules = InventoryRules(dedup_horizon_ms=MIN)
    state = final([snapshot(T0, 10), hold(T0 + 1, 1), hold(T0 + 1, 2), hold(T0 + 2 * MIN, 1)],
                  rules, batch=4)  # fmt: skip
    assert state.entries == [(T0 + 1, -3, 0)]
    assert state.available == 6


def test_behind_the_fold_line_changes_still_count_and_snapshots_are_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rules = InventoryRules(dedup_horizon_ms=10 * MIN, snapshot_horizon_ms=20 * MIN)
    table = Table()
    table.run([snapshot(T0, 100), hold(T0 + MIN, 1), hold(T0 + 30 * MIN, 1)], rules)
    assert table.state().fold_ts == T0 + MIN
    late = [returned(T0 + 30_000, 5), snapshot(T0 + 40_000, 7, store="s1", sku="A")]
    outcome = apply_changes(table, late, rules)
    assert outcome.applied[Applied.LATE] == 1
    assert outcome.applied[Applied.INEXACT_SNAPSHOT] == 1
    table.update(outcome.encoded)
    state = table.state()
    assert state.available == 103
    assert (state.inexact_snapshots, state.inexact_ts) == (1, T0 + 40_000)
    (record,) = [r for r in caplog.records if "cannot be applied exactly" in r.getMessage()]
    assert record.levelname == "WARNING"
    assert "store s1 sku A" in record.getMessage()
    assert f"up to ts {T0 + MIN} are folded" in record.getMessage()
    # re-sent, it is counted once
    outcome = apply_changes(table, [snapshot(T0 + 40_000, 7)], rules)
    assert outcome.applied[Applied.DUPLICATE] == 1
    assert outcome.encoded == {}


def test_a_snapshot_inside_merged_entries_is_refused_and_outside_them_applied() -> None:
    rules = InventoryRules(dedup_horizon_ms=MIN, max_entries=2)
    table = Table()
    # holds at 1..4 minutes become entries; past the cap the oldest two merge
    table.run([snapshot(T0, 100)] + [hold(T0 + i * MIN, 1) for i in range(1, 5)]
              + [hold(T0 + 60 * MIN, 1)], rules, batch=6)  # fmt: skip
    state = table.state()
    assert state.entries[0][0] - state.entries[0][2] <= T0 + MIN < state.entries[0][0]
    assert len(state.entries) == 2 and state.available == 95
    outcome = apply_changes(table, [snapshot(T0 + MIN, 50)], rules)
    assert outcome.applied[Applied.INEXACT_SNAPSHOT] == 1
    table.update(outcome.encoded)
    assert table.state().available == 95
    assert table.state().inexact_snapshots == 1
    # a snapshot before every merged change, or after all of them, is exact
    table.run([snapshot(T0 + 30_000, 50)], rules)
    assert table.state().available == 50 - 5
    table.run([snapshot(T0 + 59 * MIN, 20)], rules)
    assert table.state().available == 19
    assert table.state().entries == []


def test_a_late_change_inside_a_merged_span_keeps_the_span_whole() -> None:
    rules = InventoryRules(dedup_horizon_ms=MIN, max_entries=2)
    table = Table()
    table.run([snapshot(T0, 100)] + [hold(T0 + i * MIN, 1) for i in range(1, 5)]
              + [hold(T0 + 60 * MIN, 1)], rules, batch=6)  # fmt: skip
    assert table.state().entries[0] == (T0 + 2 * MIN, -2, MIN)
    table.run([hold(T0 + 90_000, 1)], rules)  # 58 minutes late, into the merged span
    assert table.state().entries[0] == (T0 + 2 * MIN, -3, MIN)
    outcome = apply_changes(table, [snapshot(T0 + 70_000, 50)], rules)
    assert outcome.applied[Applied.INEXACT_SNAPSHOT] == 1


def test_pending_changes_are_bounded_by_count_and_horizon() -> None:
    rules = InventoryRules(dedup_horizon_ms=10 * MIN, snapshot_horizon_ms=30 * MIN,
                           max_changes=5, max_entries=10)  # fmt: skip
    table = Table()
    table.run([hold(T0 + i, 1) for i in range(20)], rules, batch=20)
    state = table.state()
    assert [ts for _, ts, _ in state.pending] == [T0 + i for i in range(15, 20)]
    # past the cap the oldest are forgotten, down to 3/4 of it
    assert [ts for ts, _, _ in state.entries] == [T0 + i for i in range(7, 15)]
    assert state.pending_count == 13
    table.run([restock(T0 + 7, 10)], rules)
    assert table.state().available == 10 - 13
    state = final([hold(T0, 1), hold(T0 + 40 * MIN, 1)], rules)
    assert [ts for _, ts, _ in state.pending] == [T0 + 40 * MIN]
    assert state.pending_count == 1


def test_changes_behind_the_snapshot_are_kept_for_dedup_within_the_horizon() -> None:
    h = hold(T0 + 1, 1)
    table = Table()
    table.run([h, snapshot(T0 + 2, 0)])
    table.run([h])
    state = table.state()
    assert state.available == 0
    assert state.velocity_per_min(T0 + 1, RULES) == pytest.approx(MIN / RULES.tau_ms)


def test_encoding_round_trip_and_status_byte() -> None:
    table = Table()
    table.run([snapshot(T0, 3), hold(T0 + 1, 1), hold(T0 + 2, 1)], batch=3)
    raw = table["s1|A"]
    state = StockState.decode(raw)
    assert state.encode() == raw
    assert status_of(raw) is state.status is Status.LOW
    state = StockState(snapshot_ts=T0, snapshot_value=5, changes=[("h", T0 + 10, -1)],
                       entries=[(T0 + 5, -1, 0), (T0 + 9, 3, 2)], inexact_snapshots=2,
                       inexact_ts=T0 + 3)  # fmt: skip
    assert StockState.decode(state.encode()) == state


def test_a_state_encoded_before_entries_existed_decodes() -> None:
    old = b"o" + orjson.dumps([T0, 10, None, 7, T0 + 5, T0 + 9, 0.0, 0, [["h", T0 + 9, -1]]])
    state = StockState.decode(old)
    assert (state.entries, state.inexact_snapshots, state.inexact_ts) == ([], 0, None)
    assert (state.base, state.fold_ts, state.available) == (7, T0 + 5, 6)


# --- the index the API and the gauges read -----------------------------------------


def status(sku: str, kind: Status, available: int, minutes: float | None,
           velocity: float = 1.0, store: str = "s1") -> StockStatus:  # fmt: skip
    return StockStatus(store, sku, kind, None, available, velocity, minutes, T0)


def test_index_sorts_by_urgency() -> None:
    index = StockIndex()
    for s in [
        status("low-later", Status.LOW, 50, 25.0),
        status("out-0", Status.OUT, 0, 0.0, velocity=5),
        status("low-soon", Status.LOW, 2, 1.5),
        status("oversold", Status.OUT, -4, 0.0),
        status("out-0-fast", Status.OUT, 0, 0.0, velocity=9),
        status("other-store", Status.OUT, -9, 0.0, store="s2"),
    ]:
        index.update(s)
    ranked = index.flagged("s1", [Status.OUT, Status.LOW])
    assert [s.sku for s in ranked] == ["oversold", "out-0-fast", "out-0", "low-soon", "low-later"]
    assert [s.sku for s in index.flagged("s1", [Status.LOW])] == ["low-soon", "low-later"]
    assert index.counts()[("s1", Status.OUT)] == 3
    index.update(status("oversold", Status.OK, 10, None))
    assert index.get("s1", "oversold") is None
    assert StockStatus.from_dict(ranked[0].to_dict()).urgency() == ranked[0].urgency()


# --- arrival order -----------------------------------------------------------------


def reference_available(history: list[StockChange]) -> int | None:
    """docs/architecture.md, read literally over the distinct changes."""
    unique = list({c["id"]: c for c in history}.values())
    snaps = [c for c in unique if c["kind"] == "snapshot"]
    others = [c for c in unique if c["kind"] != "snapshot"]
    if snaps:
        latest = max(snaps, key=lambda c: (c["ts"], c["qty"]))
        return latest["qty"] + sum(c["qty"] for c in others if c["ts"] > latest["ts"])
    starts = [c["ts"] for c in unique if c["kind"] in ("restock", "adjust")]
    if not starts:
        return None
    return sum(c["qty"] for c in others if c["ts"] >= min(starts))


KINDS = ["snapshot", "restock", "adjust", "hold", "release", "return"]


@st.composite
def histories(draw: st.DrawFn, spreads: tuple[int, ...] = (5, 100, 10 * MIN),
              most: int = 40, kinds: list[str] = KINDS) -> list[StockChange]:  # fmt: skip
    """One key's changes over `spread` ms of event time (small spreads make ties)."""
    n = draw(st.integers(1, most))
    spread = draw(st.sampled_from(spreads))
    history = []
    for i in range(n):
        kind = draw(st.sampled_from(kinds))
        ts = T0 + draw(st.integers(0, spread))
        qty = draw(st.integers(0, 50) if kind == "snapshot" else st.integers(1, 10))
        if kind == "hold":
            qty = -qty
        elif kind == "adjust":
            qty = draw(st.sampled_from([-1, 1])) * qty
        history.append(StockChange(id=f"c{i}", store_id="s1", sku="A", ts=ts, kind=kind, qty=qty))
    # stage 2 may send a change again
    history += draw(st.lists(st.sampled_from(history), max_size=5))
    return history


def check(history: list[StockChange], arrival: list[StockChange], rules: InventoryRules,
          batch: int) -> StockState:  # fmt: skip
    table = Table()
    table.run(arrival, rules, batch)
    expected = reference_available(history)
    state = table.state()
    assert state.tracked == (expected is not None)
    if expected is not None:
        assert state.available == expected
    return state


@settings(max_examples=300, deadline=None)
@given(histories(), st.randoms(use_true_random=False), st.integers(1, 8))
def test_any_arrival_order_gives_the_same_stock(
    history: list[StockChange], rnd: random.Random, batch: int
) -> None:
    """Within the fold horizon (15 minutes by default) every order gives the same stock."""
    in_order = check(history, sorted(history, key=lambda c: c["ts"]), RULES, 1)
    shuffled = list(history)
    rnd.shuffle(shuffled)
    state = check(history, shuffled, RULES, batch)
    end = max(c["ts"] for c in history)
    assert math.isclose(
        state.velocity_per_min(end, RULES), in_order.velocity_per_min(end, RULES), rel_tol=1e-9
    )


@settings(max_examples=200, deadline=None)
@given(histories((100, 20 * MIN, 60 * MIN)), st.randoms(use_true_random=False), st.integers(1, 8))
def test_folding_is_exact_while_lateness_stays_within_the_horizon(
    history: list[StockChange], rnd: random.Random, batch: int
) -> None:
    """Small horizon and cap: arrivals delayed by less than the horizon stay exact."""
    rules = InventoryRules(dedup_horizon_ms=2 * MIN, max_changes=10_000)
    delayed = sorted(history, key=lambda c: c["ts"] + rnd.randrange(MIN))
    check(history, delayed, rules, batch)


@st.composite
def late_snapshots(
    draw: st.DrawFn, rules: InventoryRules
) -> tuple[list[StockChange], list[StockChange]]:
    """A history over up to 3 hours with a few snapshots, and its arrival: every change
    less than the dedup horizon late, snapshots up to the snapshot horizon late (in event
    time)."""
    history = draw(histories((20 * MIN, 60 * MIN, 180 * MIN), most=80, kinds=KINDS[1:]))
    last = max(c["ts"] for c in history)
    for i in range(draw(st.integers(1, 4))):
        ts, value = draw(st.integers(T0, last)), draw(st.integers(0, 50))
        history.append(StockChange(id=f"snap{i}", store_id="s1", sku="A", ts=ts,
                                   kind="snapshot", qty=value))  # fmt: skip
    arrival = []
    for c in history:
        late = rules.snapshot_horizon_ms if c["kind"] == "snapshot" else rules.dedup_horizon_ms
        arrival.append((c["ts"] + draw(st.integers(0, 100)) * (late - 1) // 100, c))
    return history, [c for _, c in sorted(arrival, key=lambda item: item[0])]


SMALL_HORIZONS = InventoryRules(dedup_horizon_ms=2 * MIN, snapshot_horizon_ms=30 * MIN,
                                max_entries=10_000)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(late_snapshots(SMALL_HORIZONS), st.integers(1, 8))
def test_snapshots_within_the_snapshot_horizon_apply_exactly_in_any_order(
    case: tuple[list[StockChange], list[StockChange]], batch: int
) -> None:
    history, arrival = case
    state = check(history, arrival, SMALL_HORIZONS, batch)
    assert state.inexact_snapshots == 0
    in_order = check(history, sorted(history, key=lambda c: c["ts"]), SMALL_HORIZONS, 1)
    end = max(c["ts"] for c in history)
    assert math.isclose(
        state.velocity_per_min(end, SMALL_HORIZONS),
        in_order.velocity_per_min(end, SMALL_HORIZONS),
        rel_tol=1e-9,
    )


@settings(max_examples=300, deadline=None)
@given(late_snapshots(SMALL_HORIZONS))
def test_merging_entries_only_costs_the_snapshots_it_refuses(
    case: tuple[list[StockChange], list[StockChange]],
) -> None:
    """With a tiny cap: the result is the reference without the refused snapshots."""
    rules = InventoryRules(dedup_horizon_ms=2 * MIN, snapshot_horizon_ms=30 * MIN, max_entries=3)
    history, arrival = case
    first = min(history, key=lambda c: c["ts"])
    # a snapshot first: nothing is ever pending (pending changes are forgotten, not merged)
    arrival = [snapshot(first["ts"], 100, id="first"), *arrival]
    table = Table()
    refused = set()
    for change in arrival:
        outcome = apply_changes(table, [change], rules)
        table.update(outcome.encoded)
        # DUPLICATE: at the ts of the last refused one
        if change["kind"] == "snapshot" and (
            outcome.applied[Applied.INEXACT_SNAPSHOT] or outcome.applied[Applied.DUPLICATE]
        ):
            refused.add(change["id"])
    state = table.state()
    assert state.available == reference_available([c for c in arrival if c["id"] not in refused])
    assert len(state.entries) <= 3
