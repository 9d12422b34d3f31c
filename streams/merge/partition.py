"""Stage 3: merge per-partition partials into final store x channel windows (phase 2).

A window is final once every stage-2 partition has closed it (each reports the start
before which its windows are closed, after the partials it closed). Each final window is
emitted once: a partial that arrives for a window already emitted is dropped, never merged
into a second result. Normally that is a replay (stage 2 re-sending after a crash) of a
partial already merged. One from a source that had not contributed to the window would be
events lost (stage 2 reported the window closed before sending its partial): that is
checked at runtime for recently emitted windows and reported as `missed`, never dropped
in silence.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from streams.eventtime import WindowKey
from streams.funnel.aggregates import STAGES, TRAFFIC_STAGES, WindowAggregate
from streams.merge.buyers import BuyerCounts

__all__ = ["MergePartition", "Spend", "window_key", "window_record"]

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Spend:
    """A window's share of the campaign spend (the calendar, alerts/campaign.py)."""

    amount: Decimal
    currency: str


@dataclass
class MergePartition:
    partition: int
    sources: int
    # window -> source partition -> partial aggregate (as dict); a re-sent partial replaces
    pending: dict[WindowKey, dict[int, dict[str, Any]]] = field(default_factory=dict)
    closed_before: dict[int, int | None] = field(default_factory=dict)  # by source partition
    final_before: int | None = None
    # recently emitted windows -> the sources merged into them (in memory: the runtime check)
    keep_emitted_ms: int = 15 * 60_000
    emitted: dict[WindowKey, set[int]] = field(default_factory=dict)
    # partials that came after their window was emitted, from a source not merged into it:
    # (window, source, events in the partial); the agent drains and reports them
    missed: list[tuple[WindowKey, int, int]] = field(default_factory=list)
    # windows the windows topic holds that the restored state had not marked emitted (a
    # crash lost the mark, not the window): finalized again, not emitted again
    already_out: set[WindowKey] = field(default_factory=set)
    # window records emitted and not yet acknowledged by Kafka, with when they were emitted
    # (epoch ms): saved with the mark, so a restore can send again those that were lost
    unsent: dict[WindowKey, tuple[dict[str, Any], int]] = field(default_factory=dict)

    def add(self, message: dict[str, Any]) -> set[WindowKey]:
        """Take one stage-2 message; returns the windows touched."""
        source = message["source"]
        touched: set[WindowKey] = set()
        for partial in message["partials"]:
            key = (partial["store_id"], partial["channel"], partial["window_start"])
            if self.final_before is not None and key[2] < self.final_before:
                merged = self.emitted.get(key)
                if merged is not None and source not in merged:
                    self.missed.append((key, source, _events_in(partial["agg"])))
                continue
            self.pending.setdefault(key, {})[source] = partial["agg"]
            touched.add(key)
        if "closed_before" in message:  # not in the first parts of a partials set cut in several
            self.closed_before[source] = message["closed_before"]
        return touched

    def frontier(self) -> int | None:
        """Windows starting before this are complete in every source partition."""
        marks = list(self.closed_before.values())
        if len(marks) < self.sources or None in marks:
            return None  # a source has not reported or closed anything yet: it may hold data
        return min(mark for mark in marks if mark is not None)

    def finalize(self) -> list[tuple[WindowKey, WindowAggregate]]:
        frontier = self.frontier()
        if frontier is None or (self.final_before is not None and frontier <= self.final_before):
            return []
        self.final_before = frontier
        due = sorted((key for key in self.pending if key[2] < frontier), key=lambda k: k[2])
        final = []
        for key in due:
            partials = self.pending.pop(key)
            merged = WindowAggregate()
            for partial in partials.values():
                merged.merge(WindowAggregate.from_dict(partial))
            final.append((key, merged))
            self.emitted[key] = set(partials)
        forget_before = frontier - self.keep_emitted_ms
        for key in [key for key in self.emitted if key[2] < forget_before]:
            del self.emitted[key]
        return final


def _events_in(partial: dict[str, Any]) -> int:
    """Events a closed partial counted (funnel stages, failed payments, after-sales)."""
    return int(
        sum(partial["counts"].values())
        + partial["payment_failed"]
        + partial["refund_requested"]
        + partial.get("returns", 0)
        + partial.get("complaints", 0)
    )


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def window_record(
    key: WindowKey,
    window_ms: int,
    agg: WindowAggregate,
    buyers: BuyerCounts | None = None,
    spend: Spend | None = None,
) -> dict[str, Any]:
    """The `salewatch.windows` record of one final window (docs/contract.md §3-4); an open
    window's buyers are not decided yet (None); `spend` None: no campaign spend known."""
    store_id, channel, start = key
    counts = agg.counts
    users = {stage: agg.unique_users(stage) for stage in STAGES}
    attempts = agg.paid_orders + agg.payment_failed
    page_views = counts["impression"] + counts["click"]
    visitors, visitors_lower, visitors_upper = agg.visitors()
    aftersales = agg.refund_requested + agg.returns
    return {
        "store_id": store_id,
        "channel": channel,
        "window_start": start,
        "window_end": start + window_ms,
        "counts": dict(counts),
        "users": {stage: estimate for stage, (estimate, _, _) in users.items()},
        "users_lower": {stage: lower for stage, (_, lower, _) in users.items()},
        "users_upper": {stage: upper for stage, (_, _, upper) in users.items()},
        "conversion": {
            stage: _ratio(counts[stage], counts[previous])
            for previous, stage in itertools.pairwise(STAGES)
        },
        "gmv": {currency: str(amount) for currency, amount in sorted(agg.gmv.items())},
        "paid_orders": agg.paid_orders,
        "paid_orders_by_currency": dict(sorted(agg.paid_orders_by_currency.items())),
        "aov": {  # a currency's GMV over the orders paid in that currency
            currency: str((agg.gmv[currency] / paid).quantize(CENT, ROUND_HALF_EVEN))
            for currency, paid in sorted(agg.paid_orders_by_currency.items())
        },
        "payment_failed": agg.payment_failed,
        "payment_failure_rate": _ratio(agg.payment_failed, attempts),
        "refund_requested": agg.refund_requested,
        "refund_rate": _ratio(agg.refund_requested, agg.paid_orders),
        "refund_amount": str(agg.refund_amount),
        "returns": agg.returns,
        "complaints": agg.complaints,
        "aftersales_rate": _ratio(aftersales, agg.paid_orders),
        "complaint_rate": _ratio(agg.complaints, agg.paid_orders),
        "page_views": page_views,
        "visitors": visitors,
        "visitors_lower": visitors_lower,
        "visitors_upper": visitors_upper,
        "visit_depth": _ratio(page_views, visitors),
        "by_source": _traffic(agg.by_source),
        "by_category": _traffic(agg.by_category),
        **_returns(agg, spend),
        "new_buyers": None if buyers is None else buyers.new,
        "returning_buyers": None if buyers is None else buyers.returning,
        "repurchase_rate": None if buyers is None else buyers.repurchase_rate,
    }


def window_key(record: dict[str, Any]) -> WindowKey:
    """The window a `salewatch.windows` record is of (the inverse of `window_record`'s key)."""
    return record["store_id"], record["channel"], record["window_start"]


def _returns(agg: WindowAggregate, spend: Spend | None) -> dict[str, Any]:
    """Spend, ROI (GMV in the spend's currency / spend) and cost per paid order (in it)."""
    if spend is None:
        return {"spend": None, "roi": None, "cost_per_paid_order": None}
    gmv = agg.gmv.get(spend.currency, Decimal(0))
    paid = agg.paid_orders_by_currency.get(spend.currency, 0)
    return {
        "spend": {spend.currency: str(spend.amount.quantize(CENT, ROUND_HALF_EVEN))},
        "roi": float(gmv / spend.amount) if spend.amount else None,
        "cost_per_paid_order": (
            str((spend.amount / paid).quantize(CENT, ROUND_HALF_EVEN)) if paid else None
        ),
    }


def _traffic(by_name: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    return {
        name: dict(zip(TRAFFIC_STAGES, pair, strict=True)) for name, pair in sorted(by_name.items())
    }
