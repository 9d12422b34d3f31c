"""Stage 2: per-partition funnel aggregation (phase 1 of the two-phase aggregation).

Events arrive keyed by content (streams/contract/routing.py), so duplicates and the events of one
order meet here whatever key the store used. For each partition this keeps the watermark
(streams/eventtime.py), the dedup memory, the order states and the open windows' partial
aggregates; it closes windows on the watermark plus grace and hands their partials, with
the watermark, to stage 3 (streams/merge/partition.py).
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from streams.eventtime import Watermark, WindowKey, window_start
from streams.funnel.aggregates import TRAFFIC_STAGES, WindowAggregate
from streams.funnel.dedup import Admission, Deduplicator
from streams.funnel.orders import Candidate, OrderState, apply_order_event
from streams.inventory.changes import StockChange, from_inventory_event

__all__ = ["BatchOutcome", "FunnelPartition", "OrderStore", "Outcome"]

_STAGE_OF_TYPE = {
    "impression": "impression",
    "click": "click",
    "cart_add": "cart",
}
_ORDER_TYPES = frozenset({"order_created", "order_paid", "payment_failed", "order_cancelled"})
# counted per window; refund_completed is not (its request was)
_AFTERSALES_TYPES = frozenset({"refund_requested", "return_received", "complaint"})


class OrderStore(Protocol):
    def get(self, key: str) -> bytes | None: ...


class Outcome(enum.StrEnum):
    """Where a valid event ends (each in exactly one: the conservation accounting)."""

    COUNTED = "counted"  # in a window
    LATE = "late"  # its window had closed: in none
    DUPLICATE = "duplicate"  # its event_id was already admitted
    IGNORED = "ignored"  # on time, but no window counts it (cart_remove, stock, a repeat ...)


@dataclass
class BatchOutcome:
    """What one batch of one partition changed, for the agent to persist, send and count."""

    stock_changes: list[StockChange] = field(default_factory=list)
    touched_windows: set[WindowKey] = field(default_factory=set)
    touched_orders: dict[str, OrderState] = field(default_factory=dict)
    funnel: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    gmv: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    paid_orders: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # + currency
    # (store, source or category, stage) of impressions and clicks naming them
    sources: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    categories: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, Outcome]] = field(default_factory=Counter)  # by event type

    def count(self, event_type: str, outcome: Outcome) -> None:
        self.outcomes[event_type, outcome] += 1


class FunnelPartition:
    """The stage-2 state of one partition of the routed-events topic."""

    def __init__(self, partition: int, window_ms: int, grace_ms: int,
                 dedup_horizon_ms: int) -> None:  # fmt: skip
        self.partition = partition
        self.window_ms = window_ms
        self.watermark = Watermark(window_ms, grace_ms)
        self.dedup = Deduplicator(dedup_horizon_ms)
        self.windows: dict[WindowKey, WindowAggregate] = {}
        # window -> the input offset up to which its stored record holds every event: a
        # replay after a crash must not add those events again (streams/funnel/agent.py)
        self.versions: dict[WindowKey, int] = {}
        # restored windows the restored watermark had already closed: sent again
        self._reclosed: list[tuple[WindowKey, WindowAggregate]] = []
        self._offset: int | None = None  # the input offset of the events being applied
        self._emptied: list[WindowKey] = []  # closed with nothing in them: no result

    def restore_window(self, key: WindowKey, aggregate: WindowAggregate, version: int) -> None:
        """A window from the tables; one already closed goes out again at the next close
        (its partial may have been lost with the crash: stage 3 drops a partial twice)."""
        closed_before = self.watermark.closed_before_ms
        if closed_before is not None and key[2] < closed_before:
            self._reclosed.append((key, aggregate))
        else:
            self.windows[key] = aggregate
            self.versions[key] = version

    def apply(
        self,
        events: list[dict[str, Any]],
        orders: OrderStore,
        out: BatchOutcome | None = None,
        offset: int | None = None,
    ) -> BatchOutcome:
        """Apply the events of one input message (at `offset`, if known: a window whose
        stored version is at or past it already holds them)."""
        out = out if out is not None else BatchOutcome()
        self._offset = offset
        is_late = self.watermark.is_late
        for event in events:
            # Lateness before dedup: a late copy must not make its on-time original a
            # duplicate. Late in its own input partition (stage 1), or its window is
            # already closed here.
            late = event.get("late", False) or is_late(event["ts"])
            if self.dedup.admit(event["event_id"], event["ts"], late=late) is Admission.DUPLICATE:
                out.count(event["type"], Outcome.DUPLICATE)
                continue
            outcome = self._apply_one(event, late, orders, out)
            out.count(event["type"], Outcome.LATE if late else outcome)
        return out

    def _apply_one(
        self, event: dict[str, Any], late: bool, orders: OrderStore, out: BatchOutcome
    ) -> Outcome:
        """Apply a new event; returns its outcome were it on time."""
        event_type = event["type"]
        stage = _STAGE_OF_TYPE.get(event_type)
        if stage is not None:
            if not late:
                window = self._window(event, out)
                window.add_stage(stage, event.get("user_id"))
                if stage in TRAFFIC_STAGES:
                    self._count_traffic(window, stage, event, out)
                out.funnel[event["store_id"], event["channel"], stage] += 1
            return Outcome.COUNTED
        if event_type in _ORDER_TYPES:
            return self._apply_order(event, late, orders, out)
        change = from_inventory_event(event)  # a return that restocks moves stock, late or not
        if change is not None:
            out.stock_changes.append(change)
        if event_type in _AFTERSALES_TYPES:
            if not late:
                self._count_aftersales(event, out)
            return Outcome.COUNTED
        return Outcome.IGNORED

    @staticmethod
    def _count_traffic(
        window: WindowAggregate, stage: str, event: dict[str, Any], out: BatchOutcome
    ) -> None:
        source, category = event.get("source"), event.get("category")
        window.add_traffic(stage, source, category)
        if source is not None:
            out.sources[event["store_id"], source, stage] += 1
        if category is not None:
            out.categories[event["store_id"], category, stage] += 1

    def _count_aftersales(self, event: dict[str, Any], out: BatchOutcome) -> None:
        """The window counts it (the metrics count final windows: streams/merge/agent.py)."""
        window = self._window(event, out)
        event_type = event["type"]
        if event_type == "refund_requested":
            window.add_refund(Decimal(event["amount"]))
        elif event_type == "return_received":
            window.returns += 1
        else:
            window.complaints += 1

    def _apply_order(
        self, event: dict[str, Any], late: bool, orders: OrderStore, out: BatchOutcome
    ) -> Outcome:
        store_id = event["store_id"]
        key = f"{store_id}|{event['order_id']}"
        state = out.touched_orders.get(key)
        if state is None:
            raw = orders.get(key)
            state = OrderState.decode(raw) if raw is not None else OrderState()
            out.touched_orders[key] = state
        out.stock_changes.extend(apply_order_event(state, event))
        if late:
            return Outcome.LATE
        event_type = event["type"]
        if event_type == "payment_failed":
            self._window(event, out).payment_failed += 1
            return Outcome.COUNTED
        if event_type == "order_created":
            first, state.created_by = self._candidate(state.created_by, event, "order", out)
        elif event_type == "order_paid":
            first, state.paid_by = self._candidate(state.paid_by, event, "pay", out)
        else:
            return Outcome.IGNORED
        return Outcome.COUNTED if first else Outcome.IGNORED

    def _candidate(
        self, counted: Candidate | None, event: dict[str, Any], stage: str, out: BatchOutcome
    ) -> tuple[bool, Candidate | None]:
        """Make an on-time order_created / order_paid the order's candidate for `stage` if
        it is earlier (ts, event_id) than the one counted so far, moving the order out of
        that one's window (still open: windows close in start order and this one is open).

        Returns whether it is the order's first on-time event of the kind (the live
        counters count it then, so that they move at once) and the candidate now counted.
        """
        ts_ms, event_id, channel = event["ts"], event["event_id"], event["channel"]
        if counted is not None and (counted[0], counted[1]) <= (ts_ms, event_id):
            return False, counted
        order_id, store_id = event["order_id"], event["store_id"]
        if counted is not None:
            old_key = (store_id, counted[2], window_start(counted[0], self.window_ms))
            if old_key not in self.windows:  # closed after all: the counted one stays
                return False, counted
            old = self._writable(old_key, out)
            candidates = old.order_candidates if stage == "order" else old.pay_candidates
            candidates.pop(order_id, None)
        window = self._window(event, out)
        user_id = event.get("user_id")
        if stage == "order":
            window.order_candidates[order_id] = user_id
        else:
            amount, currency = event["amount"], event["currency"]
            window.pay_candidates[order_id] = [
                user_id, str(amount), currency, ts_ms, event_id, event.get("first_purchase")
            ]  # fmt: skip
        if counted is None:
            out.funnel[store_id, channel, stage] += 1
            if stage == "pay":
                gmv_key = (store_id, channel, currency)
                out.paid_orders[gmv_key] += 1
                out.gmv[gmv_key] = out.gmv.get(gmv_key, Decimal(0)) + Decimal(amount)
        return counted is None, [ts_ms, event_id, channel]

    def _window(self, event: dict[str, Any], out: BatchOutcome) -> WindowAggregate:
        key = (event["store_id"], event["channel"], window_start(event["ts"], self.window_ms))
        return self._writable(key, out)

    def _writable(self, key: WindowKey, out: BatchOutcome) -> WindowAggregate:
        """The aggregate the current event changes: the window's own, or a scratch one when
        the window's stored record already holds the event (replayed after a crash)."""
        out.touched_windows.add(key)
        aggregate = self.windows.get(key)
        if aggregate is None:
            aggregate = self.windows[key] = WindowAggregate()
        if self._offset is not None and self.versions.get(key, -1) >= self._offset:
            return WindowAggregate()
        return aggregate

    def version_written(self, key: WindowKey, offset: int) -> int:
        """The version to store with a window written after the input up to `offset`: a
        replayed batch may end before the version the window was restored with."""
        version = self.versions[key] = max(self.versions.get(key, -1), offset)
        return version

    def close_due(self) -> list[tuple[WindowKey, WindowAggregate]]:
        """Remove and return the windows that the watermark has closed."""
        closed_before = self.watermark.closed_before_ms
        if closed_before is None:
            return []
        due = sorted((key for key in self.windows if key[2] < closed_before), key=lambda k: k[2])
        closed = [*self._reclosed, *((key, self.windows.pop(key)) for key in due)]
        self._reclosed = []
        for key in due:
            self.versions.pop(key, None)
        for _, aggregate in closed:
            aggregate.fold()
        # a window left with nothing (its only order moved to an earlier window) is no result
        self._emptied += [key for key, aggregate in closed if aggregate.is_empty()]
        return [(key, aggregate) for key, aggregate in closed if not aggregate.is_empty()]

    def take_emptied(self) -> list[WindowKey]:
        """The windows closed with nothing in them since the last call (their stored
        records can go at once: there is no partial to wait for)."""
        emptied, self._emptied = self._emptied, []
        return emptied
