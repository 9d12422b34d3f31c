"""A straightforward reference for the simulator's ground truth, written from the docs only.

It reads nothing but the delivery list (topic, key, event) and recomputes, independently
of simulator/accounting.py and simulator/inventory.py, what docs/architecture.md defines:
windows, dedup (a late copy never makes its on-time original a duplicate), the late rule,
the order winners (smallest (ts, event_id) of the on-time events), each delivery's
outcome, inventory in event time. Also shared,
cached scenarios for the tests (no conftest.py: this module is the fixture factory).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from simulator import FlashSale, Incident, Scenario, ScenarioConfig, generate
from simulator.clock import CST

STAGES = ("impression", "click", "cart", "order", "pay")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ts_ms(value: Any) -> int:
    if isinstance(value, int):
        return value
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None
    return (parsed - EPOCH) // timedelta(milliseconds=1)


def money(value: Any) -> Decimal:
    assert not isinstance(value, bool)
    return Decimal(str(value)) if isinstance(value, float) else Decimal(value)


@dataclass
class RefWindow:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    users: dict[str, set[str]] = field(default_factory=lambda: {s: set() for s in STAGES})
    gmv: Decimal = Decimal(0)
    paid_orders: int = 0
    payment_failed: int = 0
    refund_requested: int = 0
    refund_amount: Decimal = Decimal(0)
    returns: int = 0
    complaints: int = 0
    by_source: dict[str, list[int]] = field(default_factory=dict)
    by_category: dict[str, list[int]] = field(default_factory=dict)
    new_buyers: set[str] = field(default_factory=set)
    returning_buyers: set[str] = field(default_factory=set)


@dataclass
class RefTruth:
    windows: dict[tuple[str, str, int], RefWindow]
    late: set[str]
    duplicates: int
    inventory: dict[tuple[str, str], int]
    outcomes: dict[str, dict[str, int]]  # topic -> outcome -> deliveries


COUNTED_TYPES = (
    "impression",
    "click",
    "cart_add",
    "payment_failed",
    "refund_requested",
    "return_received",
    "complaint",
)
LOOKBACK_MS = 365 * 24 * 3600 * 1000


def recompute(deliveries: list[Any], window_ms: int, grace_ms: int) -> RefTruth:
    """Two passes: each delivery's outcome in delivery order, then the order winners."""
    outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    on_time_ids: set[str] = set()
    late_ids: set[str] = set()  # seen late
    late: set[str] = set()  # outcome "late"
    max_ts: int | None = None
    on_time: list[dict[str, Any]] = []  # counted or ignored, in delivery order
    for topic, _key, event in deliveries:
        ts = ts_ms(event["ts"])
        start = ts - ts % window_ms
        is_late = max_ts is not None and max_ts >= start + window_ms + grace_ms
        max_ts = ts if max_ts is None else max(max_ts, ts)
        event_id = event["event_id"]
        if is_late:
            outcome = "duplicate" if event_id in on_time_ids | late_ids else "late"
            if outcome == "late":
                late.add(event_id)
            late_ids.add(event_id)
        elif event_id in on_time_ids:
            outcome = "duplicate"
        else:
            on_time_ids.add(event_id)
            on_time.append(event)
            outcome = "counted" if event["type"] in COUNTED_TYPES else "ignored"
        outcomes[topic][outcome] += 1
    # the order winners: smallest (ts, event_id) of each order, on time events only
    winners: dict[tuple[str, str], dict[str, Any]] = {}
    for event in on_time:
        if event["type"] in ("order_created", "order_paid"):
            slot = (event["type"], event["order_id"])
            best = winners.get(slot)
            if best is None or (ts_ms(event["ts"]), event["event_id"]) < (
                ts_ms(best["ts"]),
                best["event_id"],
            ):
                winners[slot] = event
    outcomes["orders"]["counted"] += len(winners)
    outcomes["orders"]["ignored"] -= len(winners)
    windows: dict[tuple[str, str, int], RefWindow] = defaultdict(RefWindow)
    counted = [e for e in on_time if e["type"] in COUNTED_TYPES] + list(winners.values())
    for event in counted:
        ts = ts_ms(event["ts"])
        window = windows[(event["store_id"], event["channel"], ts - ts % window_ms)]
        kind = event["type"]
        stage = {
            "impression": "impression",
            "click": "click",
            "cart_add": "cart",
            "order_created": "order",
            "order_paid": "pay",
        }.get(kind)
        if stage is not None:
            window.counts[stage] += 1
            window.users[stage].add(event["user_id"])
        if kind in ("impression", "click"):
            for by, value in ((window.by_source, event.get("source")),
                              (window.by_category, event.get("category"))):  # fmt: skip
                if value is not None:
                    by.setdefault(value, [0, 0])[kind == "click"] += 1
        if kind == "order_paid":
            window.gmv += money(event["amount"])
            window.paid_orders += 1
        if kind == "payment_failed":
            window.payment_failed += 1
        if kind == "refund_requested":
            window.refund_requested += 1
            window.refund_amount += money(event["amount"])
        window.returns += kind == "return_received"
        window.complaints += kind == "complaint"
    buyers(sorted((e for e in winners.values() if e["type"] == "order_paid"),
                  key=lambda e: (ts_ms(e["ts"]), e["event_id"])), windows, window_ms)  # fmt: skip
    duplicates = sum(by_outcome.get("duplicate", 0) for by_outcome in outcomes.values())
    distinct = list({event["event_id"]: event for _t, _k, event in deliveries}.values())
    return RefTruth(
        dict(windows),
        late,
        duplicates,
        inventory(distinct),
        {topic: dict(by_outcome) for topic, by_outcome in outcomes.items()},
    )


def buyers(
    paid: list[dict[str, Any]], windows: dict[tuple[str, str, int], RefWindow], window_ms: int
) -> None:
    """New or returning per window: each paid order (in event-time order) is a first
    purchase by its flag or when its user last paid at the store over the lookback ago or
    never; a window's user takes the verdict of their first order in it."""
    history: dict[tuple[str, str], list[int]] = defaultdict(list)
    for event in paid:
        ts = ts_ms(event["ts"])
        window = windows[(event["store_id"], event["channel"], ts - ts % window_ms)]
        user = event["user_id"]
        before = history[event["store_id"], user]
        first = event.get("first_purchase", not before or ts - before[-1] > LOOKBACK_MS)
        if user not in window.new_buyers | window.returning_buyers:
            (window.new_buyers if first else window.returning_buyers).add(user)
        before.append(ts)


_RECOMPUTED: dict[int, tuple[Scenario, RefTruth]] = {}


def recompute_scenario(scenario: Scenario) -> RefTruth:
    """`recompute` for a (cached) scenario, once."""
    cached = _RECOMPUTED.get(id(scenario))
    if cached is None or cached[0] is not scenario:
        truth = scenario.truth
        cached = (scenario, recompute(scenario.deliveries, truth.window_ms, truth.grace_ms))
        _RECOMPUTED[id(scenario)] = cached
    return cached[1]


def stock_changes(unique_events: list[dict[str, Any]]) -> dict[tuple[str, str], list[Any]]:
    """(ts, delta) per store x sku from distinct events, per the order state rules: an
    order holds at its earliest order_created, releases once at its cancellation."""
    changes: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    earliest: dict[str, dict[str, Any]] = {}  # order_id -> its earliest order_created
    for event in unique_events:
        if event["type"] == "order_created":
            best = earliest.get(event["order_id"])
            if best is None or ts_ms(event["ts"]) < ts_ms(best["ts"]):
                earliest[event["order_id"]] = event
    released: set[str] = set()
    for event in unique_events:
        kind = event["type"]
        ts = ts_ms(event["ts"])
        store = event["store_id"]
        if kind == "restock":
            changes[(store, event["sku"])].append((ts, event["qty"]))
        elif kind == "stock_adjust":
            changes[(store, event["sku"])].append((ts, event["delta"]))
        elif kind == "order_created" and earliest[event["order_id"]] is event:
            for line in event["lines"]:
                changes[(store, line["sku"])].append((ts, -line["qty"]))
        elif (
            kind == "order_cancelled"
            and event["order_id"] in earliest
            and event["order_id"] not in released
        ):
            released.add(event["order_id"])
            for line in event["lines"]:
                changes[(store, line["sku"])].append((ts, line["qty"]))
        elif kind == "return_received" and event.get("restock", True):
            changes[(store, event["sku"])].append((ts, event["qty"]))
    return changes


def inventory(unique_events: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Event-time stock: latest snapshot by ts plus every change with a ts after it."""
    snapshots: dict[tuple[str, str], tuple[int, int]] = {}
    first_inventory: dict[tuple[str, str], int] = {}
    for event in unique_events:
        if event["type"] in ("stock_snapshot", "restock", "stock_adjust"):
            key = (event["store_id"], event["sku"])
            ts = ts_ms(event["ts"])
            first_inventory[key] = min(ts, first_inventory.get(key, ts))
            if event["type"] == "stock_snapshot" and (
                key not in snapshots or ts > snapshots[key][0]
            ):
                snapshots[key] = (ts, event["available"])
    result = {}
    changes = stock_changes(unique_events)
    for key in first_inventory:
        if key in snapshots:
            since, base = snapshots[key]
            result[key] = base + sum(d for ts, d in changes.get(key, []) if ts > since)
        else:
            since = first_inventory[key]
            result[key] = sum(d for ts, d in changes.get(key, []) if ts >= since)
    return result


# --- shared scenarios ------------------------------------------------------------------------
def start_at(hour: int, minute: int) -> datetime:
    return datetime(2026, 11, 10 if hour else 11, hour, minute, tzinfo=CST)


@functools.cache
def incident_scenario(key_mode: str = "store") -> Scenario:
    """Three stores, 15 minutes without the rush, all five incidents placed one by one."""
    config = ScenarioConfig(
        seed=11,
        start=start_at(0, 10),
        duration_s=1500,
        base_rate=150,
        stores=3,
        skus_per_store=400,
        flash_sales=(FlashSale(start_s=60, end_s=150, store=1),),
        incidents=(
            Incident("sellout", start_s=300, end_s=480),
            Incident("payment_outage", start_s=420, end_s=600, channel="app"),
            Incident("broken_checkout", start_s=660, end_s=840),
            Incident("refund_wave", start_s=900, end_s=1080, factor=8),
            Incident("traffic_stop", start_s=1140, end_s=1320, channel="web"),
        ),
        key_mode=key_mode,  # type: ignore[arg-type]
    )
    return generate(config)


@functools.cache
def rush_scenario() -> Scenario:
    """Ten minutes across midnight: four normal, two at x20, four normal."""
    config = ScenarioConfig(
        seed=5,
        start=start_at(23, 56),
        duration_s=600,
        base_rate=60,
        stores=2,
        skus_per_store=300,
        rush_minutes=2,
        flash_sales=(),
    )
    return generate(config)


@functools.cache
def small_scenario(seed: int = 1, key_mode: str = "store") -> Scenario:
    config = ScenarioConfig(
        seed=seed,
        duration_s=300,
        base_rate=80,
        stores=2,
        skus_per_store=200,
        key_mode=key_mode,  # type: ignore[arg-type]
        late_rate=0.01,
        out_of_order_rate=0.1,
        duplicate_rate=0.02,
        snapshot_interval_s=60,
    )
    return generate(config)


@functools.cache
def short_window_scenario() -> Scenario:
    """10 s windows with 2 s grace, random keys: the tight case for the late rule."""
    config = ScenarioConfig(
        seed=21,
        duration_s=300,
        base_rate=120,
        stores=3,
        skus_per_store=200,
        window_ms=10_000,
        grace_ms=2_000,
        key_mode="random",
        late_rate=0.005,
        out_of_order_rate=0.15,
        duplicate_rate=0.02,
        snapshot_interval_s=60,
    )
    return generate(config)


@functools.cache
def retry_scenario() -> Scenario:
    """Client retries of order events and late re-sends, 10 s windows with 3 s grace."""
    config = ScenarioConfig(
        seed=31,
        duration_s=300,
        base_rate=120,
        stores=2,
        skus_per_store=200,
        window_ms=10_000,
        grace_ms=3_000,
        key_mode="user",
        late_rate=0.03,
        out_of_order_rate=0.1,
        duplicate_rate=0.02,
        late_duplicate_rate=0.02,
        order_retry_rate=0.3,
        snapshot_interval_s=60,
    )
    return generate(config)
