"""A straightforward reference for the simulator's ground truth, written from the docs only.

It reads nothing but the delivery list (topic, key, event) and recomputes, independently
of simulator/accounting.py and simulator/inventory.py, what docs/architecture.md defines:
windows, dedup, the late rule, the order state, inventory in event time. Also shared,
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


@dataclass
class RefTruth:
    windows: dict[tuple[str, str, int], RefWindow]
    late: set[str]
    duplicates: int
    inventory: dict[tuple[str, str], int]


def recompute(deliveries: list[Any], window_ms: int, grace_ms: int) -> RefTruth:
    windows: dict[tuple[str, str, int], RefWindow] = defaultdict(RefWindow)
    seen: set[str] = set()
    late: set[str] = set()
    duplicates = 0
    max_ts: int | None = None
    created: set[str] = set()
    paid: set[str] = set()
    unique: list[dict[str, Any]] = []
    for _topic, _key, event in deliveries:
        ts = ts_ms(event["ts"])
        if event["event_id"] in seen:
            duplicates += 1
            continue
        seen.add(event["event_id"])
        unique.append(event)
        start = ts - ts % window_ms
        is_late = max_ts is not None and max_ts >= start + window_ms + grace_ms
        max_ts = ts if max_ts is None else max(max_ts, ts)
        kind = event["type"]
        if is_late:
            late.add(event["event_id"])
            if kind == "order_created":
                created.add(event["order_id"])
            if kind == "order_paid":
                paid.add(event["order_id"])
            continue
        window = windows[(event["store_id"], event["channel"], start)]
        stage = {"impression": "impression", "click": "click", "cart_add": "cart"}.get(kind)
        if kind == "order_created":
            if event["order_id"] in created:
                continue
            created.add(event["order_id"])
            stage = "order"
        if kind == "order_paid":
            if event["order_id"] in paid:
                continue
            paid.add(event["order_id"])
            stage = "pay"
            window.gmv += money(event["amount"])
            window.paid_orders += 1
        if stage is not None:
            window.counts[stage] += 1
            window.users[stage].add(event["user_id"])
        if kind == "payment_failed":
            window.payment_failed += 1
        if kind == "refund_requested":
            window.refund_requested += 1
    counted = {
        key: w
        for key, w in windows.items()
        if any(w.counts.values()) or w.payment_failed or w.refund_requested
    }
    return RefTruth(counted, late, duplicates, inventory(unique))


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
    """(ts, delta) per store x sku from distinct events, per the order state rules."""
    changes: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    created_orders = {e["order_id"] for e in unique_events if e["type"] == "order_created"}
    held: set[str] = set()
    released: set[str] = set()
    for event in unique_events:
        kind = event["type"]
        ts = ts_ms(event["ts"])
        store = event["store_id"]
        if kind == "restock":
            changes[(store, event["sku"])].append((ts, event["qty"]))
        elif kind == "stock_adjust":
            changes[(store, event["sku"])].append((ts, event["delta"]))
        elif kind == "order_created" and event["order_id"] not in held:
            held.add(event["order_id"])
            for line in event["lines"]:
                changes[(store, line["sku"])].append((ts, -line["qty"]))
        elif (
            kind == "order_cancelled"
            and event["order_id"] in created_orders
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
