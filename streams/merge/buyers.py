"""New and returning buyers per final window, decided in event time (docs/contract.md §3).

A paid order is a first purchase when its `first_purchase` flag says so (the store knows
its own history) or, without the flag, when its user has no paid order at the store within
the lookback before it, by (ts, event_id). A paying user of a window is a new buyer when
their earliest paid order in it is a first purchase, else a returning buyer.

Stage 3 sees every final window of a store (it is partitioned by store), in window-start
order, and all channels of one start at once: so the history per store x user is complete
and in event time whatever the arrival order. Only counted paid orders (each order's
earliest on-time `order_paid`) enter it.

The history table keeps per store x user three integers, `[window, before, last]`: the
window start that last wrote the entry, the user's latest paid ts before that window, and
the latest paid ts in it. A window replayed after a crash (its final mark lost with its
output, the history written) finds its own start and judges against `before` again, so
the replay decides as the first run did.
"""

from __future__ import annotations

import struct
from collections.abc import MutableMapping
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from streams.eventtime import WindowKey
from streams.funnel.aggregates import WindowAggregate

__all__ = ["BuyerCounts", "BuyerHistory"]

_ENTRY = struct.Struct(">qqq")  # window start, latest paid ts before it, latest paid ts
_NONE = -1  # no paid order before the window


@dataclass(frozen=True)
class BuyerCounts:
    new: int = 0
    returning: int = 0

    @property
    def repurchase_rate(self) -> float | None:
        """Returning buyers / paying users of the window."""
        buyers = self.new + self.returning
        return self.returning / buyers if buyers else None


class BuyerHistory:
    """The store x user history of one stage-3 partition over its table (str -> bytes)."""

    def __init__(self, table: MutableMapping[str, bytes], lookback_ms: int) -> None:
        self.table = table
        self.lookback_ms = lookback_ms

    def classify(
        self, final: list[tuple[WindowKey, WindowAggregate]]
    ) -> dict[WindowKey, BuyerCounts]:
        """Buyer counts of final windows given in window-start order; updates the history."""
        counts: dict[WindowKey, BuyerCounts] = {}
        for start, windows in groupby(final, key=lambda item: item[0][2]):
            counts.update(self._classify_start(start, list(windows)))
        return counts

    def _classify_start(
        self, start: int, windows: list[tuple[WindowKey, WindowAggregate]]
    ) -> dict[WindowKey, BuyerCounts]:
        # every paid order of the windows starting at `start`, in event-time order
        orders: list[tuple[int, str, WindowKey, str, Any]] = sorted(
            (
                (ts, event_id, key, user_id, first_purchase)
                for key, aggregate in windows
                for user_id, ts, event_id, first_purchase in aggregate.payers
            ),
            key=lambda order: order[:2],
        )
        latest: dict[str, int] = {}  # history key -> latest paid ts so far
        before: dict[str, int] = {}  # history key -> latest paid ts before this start
        verdicts: dict[tuple[WindowKey, str], bool] = {}  # (window, user) -> new buyer
        for ts, _event_id, key, user_id, first_purchase in orders:
            history_key = f"{key[0]}|{user_id}"
            if history_key not in latest:
                latest[history_key] = before[history_key] = self._before(history_key, start)
            previous = latest[history_key]
            latest[history_key] = ts
            if (key, user_id) in verdicts:
                continue  # the user's earlier order in this window decided
            if first_purchase is None:
                first_purchase = previous == _NONE or ts - previous > self.lookback_ms
            verdicts[key, user_id] = first_purchase
        for history_key, ts in latest.items():
            self.table[history_key] = _ENTRY.pack(start, before[history_key], ts)
        new: dict[WindowKey, int] = {}
        returning: dict[WindowKey, int] = {}
        for (key, _user), is_new in verdicts.items():
            tally = new if is_new else returning
            tally[key] = tally.get(key, 0) + 1
        return {
            key: BuyerCounts(new.get(key, 0), returning.get(key, 0))
            for key, aggregate in windows
            if aggregate.payers
        }

    def _before(self, history_key: str, start: int) -> int:
        """The user's latest paid ts before the window starting at `start`."""
        raw = self.table.get(history_key)
        if raw is None:
            return _NONE
        written_by, before, last = _ENTRY.unpack(raw)
        return before if written_by == start else last
