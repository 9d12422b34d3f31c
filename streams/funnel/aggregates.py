"""The partial and final aggregate of one store x channel x window (docs/contract.md §3).

Counts and sums add; unique users are Apache DataSketches HLL sketches, which merge exactly
as if one sketch had seen every user (lg_k=12: relative standard error 1.6%, so the true
count lies within the reported 3-sigma bounds `users_lower`/`users_upper` 99.7% of the time;
below a few hundred users the sketch is exact).

The `order` and `pay` stages of an open window are kept as candidates per order: the
order's earliest `order_created` / `order_paid` by (ts, event_id) counts, and a still
earlier one may yet arrive and move it to another open window. HLL sketches cannot forget a
user, so candidates are folded into counts, users and GMV only when the window closes
(`fold`), when no earlier event can reach it any more. Folding also lists the window's
payers (user, ts, event_id, the store's `first_purchase` flag): stage 3 decides from them,
in event time, which buyers are new and which return (streams/merge/buyers.py).

Impressions and clicks are also counted per traffic `source` and per `category`, and the
after-sales events per window: refund requests (count and amount), returns, complaints.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import datasketches as ds

__all__ = ["STAGES", "TRAFFIC_STAGES", "WindowAggregate"]

STAGES = ("impression", "click", "cart", "order", "pay")
TRAFFIC_STAGES = ("impression", "click")  # the stages that carry `source` and `category`
HLL_LG_K = 12
HLL_TYPE = ds.tgt_hll_type.HLL_4
BOUND_STD_DEVS = 3


def _new_sketch() -> ds.hll_sketch:
    return ds.hll_sketch(HLL_LG_K, HLL_TYPE)


@dataclass
class WindowAggregate:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    users: dict[str, ds.hll_sketch] = field(default_factory=dict)
    gmv: dict[str, Decimal] = field(default_factory=dict)  # by currency
    paid_orders: int = 0
    paid_orders_by_currency: dict[str, int] = field(default_factory=dict)  # AOV per currency
    payment_failed: int = 0
    refund_requested: int = 0
    refund_amount: Decimal = Decimal(0)
    returns: int = 0
    complaints: int = 0
    # [impressions, clicks] per traffic source and per category
    by_source: dict[str, list[int]] = field(default_factory=dict)
    by_category: dict[str, list[int]] = field(default_factory=dict)
    # open window only: order_id -> user_id, and
    # order_id -> [user_id, amount, currency, ts, event_id, first_purchase]
    order_candidates: dict[str, str | None] = field(default_factory=dict)
    pay_candidates: dict[str, list[Any]] = field(default_factory=dict)
    # closed window: [user_id, ts, event_id, first_purchase] of each paid order
    payers: list[list[Any]] = field(default_factory=list)

    def add_stage(self, stage: str, user_id: str | None) -> None:
        self.counts[stage] += 1
        if user_id is not None:
            sketch = self.users.get(stage)
            if sketch is None:
                sketch = self.users[stage] = _new_sketch()
            sketch.update(user_id)

    def add_traffic(self, stage: str, source: str | None, category: str | None) -> None:
        """Count an impression or click by its source and category (when it names them)."""
        index = TRAFFIC_STAGES.index(stage)
        if source is not None:
            self.by_source.setdefault(source, [0, 0])[index] += 1
        if category is not None:
            self.by_category.setdefault(category, [0, 0])[index] += 1

    def add_refund(self, amount: Decimal) -> None:
        self.refund_requested += 1
        self.refund_amount += amount

    def add_payment(self, amount: Decimal, currency: str) -> None:
        self.paid_orders += 1
        self.gmv[currency] = self.gmv.get(currency, Decimal(0)) + amount
        self.paid_orders_by_currency[currency] = self.paid_orders_by_currency.get(currency, 0) + 1

    def fold(self) -> None:
        """Count the order and pay candidates (the window is closing)."""
        for user_id in self.order_candidates.values():
            self.add_stage("order", user_id)
        for user_id, amount, currency, *paid_by in self.pay_candidates.values():
            self.add_stage("pay", user_id)
            self.add_payment(Decimal(amount), currency)
            if paid_by:  # (ts, event_id, first_purchase); absent in state of older versions
                self.payers.append([user_id, *paid_by])
        self.order_candidates, self.pay_candidates = {}, {}

    def is_empty(self) -> bool:
        return not (
            any(self.counts.values())
            or self.payment_failed
            or self.refund_requested
            or self.returns
            or self.complaints
            or self.order_candidates
            or self.pay_candidates
        )

    def merge(self, other: WindowAggregate) -> None:
        for stage, n in other.counts.items():
            self.counts[stage] += n
        for stage, sketch in other.users.items():
            union = ds.hll_union(HLL_LG_K)
            if stage in self.users:
                union.update(self.users[stage])
            union.update(sketch)
            self.users[stage] = union.get_result(HLL_TYPE)
        for currency, amount in other.gmv.items():
            self.gmv[currency] = self.gmv.get(currency, Decimal(0)) + amount
        self.paid_orders += other.paid_orders
        for currency, n in other.paid_orders_by_currency.items():
            self.paid_orders_by_currency[currency] = (
                self.paid_orders_by_currency.get(currency, 0) + n
            )
        self.payment_failed += other.payment_failed
        self.refund_requested += other.refund_requested
        self.refund_amount += other.refund_amount
        self.returns += other.returns
        self.complaints += other.complaints
        _add_pairs(self.by_source, other.by_source)
        _add_pairs(self.by_category, other.by_category)
        self.order_candidates.update(other.order_candidates)
        self.pay_candidates.update(other.pay_candidates)
        self.payers.extend(other.payers)

    def unique_users(self, stage: str) -> tuple[int, int, int]:
        """(estimate, lower, upper) unique users of a stage, bounds at 3 sigma."""
        sketch = self.users.get(stage)
        return (0, 0, 0) if sketch is None else _estimate(sketch)

    def visitors(self) -> tuple[int, int, int]:
        """(estimate, lower, upper) unique users of impressions and clicks together."""
        union = ds.hll_union(HLL_LG_K)
        for stage in TRAFFIC_STAGES:
            if stage in self.users:
                union.update(self.users[stage])
        return _estimate(union.get_result(HLL_TYPE))

    # --- encoding for tables and the partials topic ---------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "users": {
                stage: base64.b64encode(sketch.serialize_compact()).decode()
                for stage, sketch in self.users.items()
            },
            "gmv": {currency: str(amount) for currency, amount in self.gmv.items()},
            "paid_orders": self.paid_orders,
            "paid_orders_by_currency": self.paid_orders_by_currency,
            "payment_failed": self.payment_failed,
            "refund_requested": self.refund_requested,
            "refund_amount": str(self.refund_amount),
            "returns": self.returns,
            "complaints": self.complaints,
            "by_source": self.by_source,
            "by_category": self.by_category,
            "order_candidates": self.order_candidates,
            "pay_candidates": self.pay_candidates,
            "payers": self.payers,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowAggregate:
        return cls(
            counts=dict(data["counts"]),
            users={
                stage: ds.hll_sketch.deserialize(base64.b64decode(encoded))
                for stage, encoded in data["users"].items()
            },
            gmv={currency: Decimal(amount) for currency, amount in data["gmv"].items()},
            paid_orders=data["paid_orders"],
            paid_orders_by_currency=data.get("paid_orders_by_currency")
            or _paid_orders_of_one_currency(data),
            payment_failed=data["payment_failed"],
            refund_requested=data["refund_requested"],
            # .get: windows saved by versions before the after-sales and traffic fields
            refund_amount=Decimal(data.get("refund_amount", 0)),
            returns=data.get("returns", 0),
            complaints=data.get("complaints", 0),
            by_source=data.get("by_source", {}),
            by_category=data.get("by_category", {}),
            order_candidates=data["order_candidates"],
            pay_candidates=data["pay_candidates"],
            payers=data.get("payers", []),
        )


def _paid_orders_of_one_currency(data: dict[str, Any]) -> dict[str, int]:
    """Paid orders per currency of a window saved before they were kept: known when all its
    orders were paid in one currency; with several, no currency gets an AOV."""
    currencies = list(data["gmv"])
    return {currencies[0]: data["paid_orders"]} if len(currencies) == 1 else {}


def _estimate(sketch: ds.hll_sketch) -> tuple[int, int, int]:
    if sketch.is_empty():
        return 0, 0, 0
    return (
        round(sketch.get_estimate()),
        int(sketch.get_lower_bound(BOUND_STD_DEVS)),
        int(-(-sketch.get_upper_bound(BOUND_STD_DEVS) // 1)),
    )


def _add_pairs(into: dict[str, list[int]], other: dict[str, list[int]]) -> None:
    for name, (impressions, clicks) in other.items():
        pair = into.setdefault(name, [0, 0])
        pair[0] += impressions
        pair[1] += clicks
