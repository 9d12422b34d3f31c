"""Stage 3: merge per-partition partials into final store x channel windows (phase 2).

A window is final once every stage-2 partition's watermark has passed it. Idle partitions
do not hold the frontier back (they report `idle`); a partition that is active but has not
seen an event yet does. Each final window is emitted once: partials that arrive for a
window already emitted are counted late, never merged into a second result.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from streams.aggregates import STAGES, WindowAggregate
from streams.funnel import WindowKey
from streams.routing import partition_for

__all__ = ["MergePartition", "merge_partition", "window_record"]

CENT = Decimal("0.01")


def merge_partition(store_id: str, partitions: int) -> int:
    """Stage 3 is partitioned by store, so store-level detectors see all its channels.
    Its input is one small record per closed partial window: no hot-key risk."""
    return partition_for(store_id, partitions)


@dataclass
class MergePartition:
    partition: int
    sources: int
    # window -> source partition -> partial aggregate (as dict); a re-sent partial replaces
    pending: dict[WindowKey, dict[int, dict[str, Any]]] = field(default_factory=dict)
    watermarks: dict[int, tuple[int | None, bool]] = field(default_factory=dict)
    final_before: int | None = None

    def add(self, message: dict[str, Any]) -> tuple[set[WindowKey], int]:
        """Take one stage-2 message; returns the windows touched and late partials' events."""
        source = message["source"]
        touched: set[WindowKey] = set()
        late_events = 0
        for partial in message["partials"]:
            key = (partial["store_id"], partial["channel"], partial["window_start"])
            if self.final_before is not None and key[2] < self.final_before:
                late_events += sum(partial["agg"]["counts"].values())
                continue
            self.pending.setdefault(key, {})[source] = partial["agg"]
            touched.add(key)
        self.watermarks[source] = (message["closed_before"], message["idle"])
        return touched, late_events

    def frontier(self) -> int | None:
        """Windows starting before this are complete in every source partition."""
        if len(self.watermarks) < self.sources:
            return None  # a source has not reported yet: it may still hold data
        active = [closed for closed, idle in self.watermarks.values() if not idle]
        if active:
            return None if None in active else min(c for c in active if c is not None)
        known = [closed for closed, _ in self.watermarks.values() if closed is not None]
        return max(known) if known else None

    def finalize(self) -> list[tuple[WindowKey, WindowAggregate]]:
        frontier = self.frontier()
        if frontier is None or (self.final_before is not None and frontier <= self.final_before):
            return []
        self.final_before = frontier
        due = sorted((key for key in self.pending if key[2] < frontier), key=lambda k: k[2])
        final = []
        for key in due:
            merged = WindowAggregate()
            for partial in self.pending.pop(key).values():
                merged.merge(WindowAggregate.from_dict(partial))
            final.append((key, merged))
        return final


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def window_record(key: WindowKey, window_ms: int, agg: WindowAggregate) -> dict[str, Any]:
    """The `salewatch.windows` record of one final window (CONTRACT.md §3-4)."""
    store_id, channel, start = key
    counts = agg.counts
    users = {stage: agg.unique_users(stage) for stage in STAGES}
    attempts = agg.paid_orders + agg.payment_failed
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
        "aov": {
            currency: str((amount / agg.paid_orders).quantize(CENT, ROUND_HALF_EVEN))
            for currency, amount in sorted(agg.gmv.items())
        },
        "payment_failed": agg.payment_failed,
        "payment_failure_rate": _ratio(agg.payment_failed, attempts),
        "refund_requested": agg.refund_requested,
        "refund_rate": _ratio(agg.refund_requested, agg.paid_orders),
    }
