"""The ground truth of a scenario: what a correct pipeline must report, and JSON for it.

Semantics (docs/architecture.md, "Semantics the tables and the simulator's ground truth
share"; simulator/accounting.py applies them): windows are `ts - ts % window_ms` per
store x channel; stages impression, click, cart (cart_add), order and pay. An event is late
iff, when it is delivered, the largest ts delivered before it is at or beyond its window's
end + grace; late events are left out of windows. An on-time event whose event_id was
already seen on time is a duplicate (a late copy does not make its on-time original one);
a late event whose event_id was already seen is a duplicate. Of each order's on-time
order_created events the one with the smallest (ts, event_id) counts for `order`; likewise
order_paid for `pay`, paid orders and GMV, in that event's window. payment_failed and
refund_requested count per on-time event (with the sum of their amounts), and so do
return_received and complaint; impressions and clicks also per `source` and `category`.
Visitors are the users of impressions and clicks. A paying user of a window is a new buyer
when the user's earliest counted paid order in it is a first purchase: its `first_purchase`
flag, or else no counted paid order of the user at the store before it by (ts, event_id)
within the buyer lookback; otherwise a returning buyer. Every delivery has one outcome per topic
(OUTCOMES). Inventory is the event-time stock (latest snapshot by ts plus changes after it);
every pair is tracked from the scenario's start (its first snapshot) and `last_sale_ms` is
its latest hold (order), for slow-moving stock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from simulator.topics import STAGES

__all__ = ["OUTCOMES", "ExpectedAlert", "GroundTruth", "WindowKey", "WindowTruth"]

WindowKey = tuple[str, str, int]  # (store_id, channel, window_start_ms)
# what became of one delivery (salewatch_event_outcomes_total{topic, outcome})
OUTCOMES = ("counted", "late", "duplicate", "ignored")


@dataclass
class WindowTruth:
    """One store x channel x window, as the pipeline's closed window must report it."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    users: dict[str, set[str]] = field(default_factory=lambda: {stage: set() for stage in STAGES})
    gmv: Decimal = Decimal(0)
    paid_orders: int = 0
    payment_failed: int = 0
    refund_requested: int = 0
    refund_amount: Decimal = Decimal(0)
    returns: int = 0
    complaints: int = 0
    # [impressions, clicks] per source and per category
    by_source: dict[str, list[int]] = field(default_factory=dict)
    by_category: dict[str, list[int]] = field(default_factory=dict)
    new_buyers: set[str] = field(default_factory=set)
    returning_buyers: set[str] = field(default_factory=set)

    def uv(self, stage: str) -> int:
        """Exact unique users of a stage."""
        return len(self.users[stage])

    def conversion(self, stage: str) -> float | None:
        """Step conversion into `stage` (stage / previous stage), None without a base."""
        index = STAGES.index(stage)
        if index == 0:
            return None
        base = self.counts[STAGES[index - 1]]
        return self.counts[stage] / base if base else None

    @property
    def payment_attempts(self) -> int:
        return self.counts["pay"] + self.payment_failed

    @property
    def visitors(self) -> set[str]:
        """Users who saw or clicked anything (the UV of visit depth)."""
        return self.users["impression"] | self.users["click"]

    @property
    def page_views(self) -> int:
        return self.counts["impression"] + self.counts["click"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "uv": {stage: len(users) for stage, users in self.users.items()},
            "users": {stage: sorted(users) for stage, users in self.users.items()},
            "gmv": str(self.gmv),
            "paid_orders": self.paid_orders,
            "payment_failed": self.payment_failed,
            "refund_requested": self.refund_requested,
            "refund_amount": str(self.refund_amount),
            "returns": self.returns,
            "complaints": self.complaints,
            "by_source": self.by_source,
            "by_category": self.by_category,
            "new_buyers": sorted(self.new_buyers),
            "returning_buyers": sorted(self.returning_buyers),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowTruth:
        return cls(
            counts={stage: int(data["counts"].get(stage, 0)) for stage in STAGES},
            users={stage: set(data["users"].get(stage, ())) for stage in STAGES},
            gmv=Decimal(data["gmv"]),
            paid_orders=int(data["paid_orders"]),
            payment_failed=int(data["payment_failed"]),
            refund_requested=int(data["refund_requested"]),
            refund_amount=Decimal(data["refund_amount"]),
            returns=int(data["returns"]),
            complaints=int(data["complaints"]),
            by_source={name: list(pair) for name, pair in data["by_source"].items()},
            by_category={name: list(pair) for name, pair in data["by_category"].items()},
            new_buyers=set(data["new_buyers"]),
            returning_buyers=set(data["returning_buyers"]),
        )


@dataclass(frozen=True)
class ExpectedAlert:
    """An alert the injected incidents must raise (or, in `allowed_alerts`, may raise).

    Times are event time: when the condition starts and ends in the data. Detectors on
    closed windows fire at window granularity, after the window closes; `ends_at_ms` None
    means the condition still holds when the scenario ends. `evidence` gives the rates and
    volumes behind the alert (per window), for judging what a detector can see.
    """

    alertname: str
    labels: dict[str, str]
    starts_at_ms: int
    ends_at_ms: int | None
    incident: str
    evidence: dict[str, float | int | None] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """(alertname, sorted labels): to match alerts by identity."""
        return self.alertname, tuple(sorted(self.labels.items()))

    def __hash__(self) -> int:
        return hash((self.key, self.starts_at_ms, self.ends_at_ms, self.incident))

    def to_dict(self) -> dict[str, Any]:
        return {
            "alertname": self.alertname,
            "labels": dict(self.labels),
            "starts_at_ms": self.starts_at_ms,
            "ends_at_ms": self.ends_at_ms,
            "incident": self.incident,
            "evidence": dict(self.evidence),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExpectedAlert:
        return cls(
            alertname=data["alertname"],
            labels=dict(data["labels"]),
            starts_at_ms=int(data["starts_at_ms"]),
            ends_at_ms=None if data["ends_at_ms"] is None else int(data["ends_at_ms"]),
            incident=data["incident"],
            evidence=dict(data.get("evidence", {})),
        )


@dataclass
class GroundTruth:
    """Everything a correct pipeline reports for a scenario, computed while generating it."""

    start_ms: int
    end_ms: int
    window_ms: int
    grace_ms: int
    dedup_horizon_ms: int
    windows: dict[WindowKey, WindowTruth] = field(default_factory=dict)
    late_event_ids: set[str] = field(default_factory=set)
    late_by_topic: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0  # extra copies delivered
    duplicates_by_topic: dict[str, int] = field(default_factory=dict)
    events_by_topic: dict[str, int] = field(default_factory=dict)  # deliveries not duplicates
    # topic -> outcome (OUTCOMES) -> deliveries: each delivery has exactly one outcome
    outcomes_by_topic: dict[str, dict[str, int]] = field(default_factory=dict)
    events_by_type: dict[str, int] = field(default_factory=dict)
    deliveries: int = 0
    inventory: dict[tuple[str, str], int] = field(default_factory=dict)  # final available
    last_sale_ms: dict[tuple[str, str], int] = field(default_factory=dict)  # latest hold ts
    expected_alerts: list[ExpectedAlert] = field(default_factory=list)
    allowed_alerts: list[ExpectedAlert] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # --- queries ---------------------------------------------------------------------------
    def window(self, store_id: str, channel: str, window_start_ms: int) -> WindowTruth:
        """The window's truth (an empty one when nothing counted in it)."""
        return self.windows.get((store_id, channel, window_start_ms)) or WindowTruth()

    def select(
        self, store_id: str | None = None, channel: str | None = None
    ) -> dict[WindowKey, WindowTruth]:
        return {
            key: value
            for key, value in self.windows.items()
            if (store_id is None or key[0] == store_id) and (channel is None or key[1] == channel)
        }

    def totals(self, store_id: str | None = None, channel: str | None = None) -> WindowTruth:
        """All windows of a store and/or channel added up (UV over the union of users)."""
        total = WindowTruth()
        for window in self.select(store_id, channel).values():
            for stage in STAGES:
                total.counts[stage] += window.counts[stage]
                total.users[stage] |= window.users[stage]
            total.gmv += window.gmv
            total.paid_orders += window.paid_orders
            total.payment_failed += window.payment_failed
            total.refund_requested += window.refund_requested
            total.refund_amount += window.refund_amount
            total.returns += window.returns
            total.complaints += window.complaints
        return total

    def quiet_since_ms(self, store_id: str, sku: str) -> int:
        """Since when the pair has not sold: its latest hold, or the start of tracking."""
        return max(self.start_ms, self.last_sale_ms.get((store_id, sku), self.start_ms))

    def slow_moving(self, at_ms: int, quiet_ms: int) -> set[tuple[str, str]]:
        """Pairs with stock at the end that sold nothing for `quiet_ms` before `at_ms` (the
        slow-moving rule without the cover rule)."""
        return {
            pair
            for pair, available in self.inventory.items()
            if available > 0 and self.quiet_since_ms(*pair) + quiet_ms <= at_ms
        }

    @property
    def gmv(self) -> Decimal:
        return sum((window.gmv for window in self.windows.values()), Decimal(0))

    # --- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "window_ms": self.window_ms,
            "grace_ms": self.grace_ms,
            "dedup_horizon_ms": self.dedup_horizon_ms,
            "windows": [
                {"store_id": store, "channel": channel, "window_start_ms": start, **w.to_dict()}
                for (store, channel, start), w in sorted(self.windows.items())
            ],
            "late_event_ids": sorted(self.late_event_ids),
            "late_by_topic": dict(sorted(self.late_by_topic.items())),
            "duplicates": self.duplicates,
            "duplicates_by_topic": dict(sorted(self.duplicates_by_topic.items())),
            "events_by_topic": dict(sorted(self.events_by_topic.items())),
            "events_by_type": dict(sorted(self.events_by_type.items())),
            "outcomes_by_topic": {
                topic: dict(outcomes) for topic, outcomes in sorted(self.outcomes_by_topic.items())
            },
            "deliveries": self.deliveries,
            "inventory": [
                {"store_id": store, "sku": sku, "available": available}
                for (store, sku), available in sorted(self.inventory.items())
            ],
            "last_sales": [
                {"store_id": store, "sku": sku, "ts": ts}
                for (store, sku), ts in sorted(self.last_sale_ms.items())
            ],
            "expected_alerts": [alert.to_dict() for alert in self.expected_alerts],
            "allowed_alerts": [alert.to_dict() for alert in self.allowed_alerts],
            "incidents": self.incidents,
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroundTruth:
        return cls(
            start_ms=data["start_ms"],
            end_ms=data["end_ms"],
            window_ms=data["window_ms"],
            grace_ms=data["grace_ms"],
            dedup_horizon_ms=data["dedup_horizon_ms"],
            windows={
                (w["store_id"], w["channel"], w["window_start_ms"]): WindowTruth.from_dict(w)
                for w in data["windows"]
            },
            late_event_ids=set(data["late_event_ids"]),
            late_by_topic=dict(data["late_by_topic"]),
            duplicates=data["duplicates"],
            duplicates_by_topic=dict(data["duplicates_by_topic"]),
            events_by_topic=dict(data["events_by_topic"]),
            events_by_type=dict(data["events_by_type"]),
            outcomes_by_topic={
                topic: dict(outcomes) for topic, outcomes in data["outcomes_by_topic"].items()
            },
            deliveries=data["deliveries"],
            inventory={(i["store_id"], i["sku"]): i["available"] for i in data["inventory"]},
            last_sale_ms={(s["store_id"], s["sku"]): s["ts"] for s in data["last_sales"]},
            expected_alerts=[ExpectedAlert.from_dict(a) for a in data["expected_alerts"]],
            allowed_alerts=[ExpectedAlert.from_dict(a) for a in data["allowed_alerts"]],
            incidents=list(data["incidents"]),
            notes=list(data["notes"]),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> GroundTruth:
        return cls.from_dict(orjson.loads(text))
