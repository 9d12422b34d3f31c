"""Runs the window detectors of one stage-3 partition as its frontier advances.

Stage 3 hands over each final window once, then the partition's frontier: every window
starting before it is final. A store x channel without a window in between had no events
at all, so it is judged on an empty window: that is how a store that stops completely is
seen. But only if data was flowing: an empty window counts as "no traffic" when another
store or channel on this worker had a window at that time (`Witness`). When nothing flows
at all (the end of a replay, a feed outage: the platform alert `SalewatchNoEvents`) the
frontier still moves on by the wall clock, and judging empty windows then would fire
TrafficDrop for every store; such windows are skipped. Stage-3 partitions finish a window
at slightly different moments, so an empty window waits up to `DEFER_WINDOWS` for its
witness before it is skipped.

Windows are judged in event-time order per key; store-wide detectors get the sum of the
store's channels per window (stage 3 is partitioned by store, so all are here), and the
prior the worker's other stores give their sparse rates (`FleetRates`, shared like the
witness).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from alerts.campaign import Calendar
from alerts.detectors import ChannelDetector, Context, Signal, StoreDetector, WindowView
from alerts.fleet import FleetRates, Prior
from alerts.thresholds import Thresholds

__all__ = ["Advance", "FunnelEvaluator", "Witness"]

MAX_GAP_WINDOWS = 64  # empty windows judged at most after a long silence (enough to fire)
DEFER_WINDOWS = 2  # an empty window waits this long (behind the frontier) for a witness
WITNESS_KEPT = 4096  # window starts remembered

ChannelKey = tuple[str, str]


class Witness:
    """Window starts in which some store on this worker had events (shared by the
    partitions' evaluators)."""

    def __init__(self) -> None:
        self.starts: set[int] = set()

    def add(self, start_ms: int) -> None:
        if start_ms in self.starts:
            return
        self.starts.add(start_ms)
        if len(self.starts) > WITNESS_KEPT:
            self.starts = set(sorted(self.starts)[-WITNESS_KEPT // 2 :])

    def __contains__(self, start_ms: int) -> bool:
        return start_ms in self.starts


@dataclass
class Advance:
    signals: list[Signal] = field(default_factory=list)
    channels: set[ChannelKey] = field(default_factory=set)  # detectors changed
    stores: set[str] = field(default_factory=set)
    forgotten_channels: set[ChannelKey] = field(default_factory=set)  # detectors dropped
    forgotten_stores: set[str] = field(default_factory=set)


class FunnelEvaluator:
    def __init__(
        self,
        partition: int,
        window_ms: int,
        calendar: Calendar,
        witness: Witness | None = None,
        fleet: FleetRates | None = None,
    ) -> None:
        self.partition = partition
        self.window_ms = window_ms
        self.calendar = calendar
        self.witness = witness if witness is not None else Witness()
        self.fleet = fleet if fleet is not None else FleetRates()
        self.channels: dict[ChannelKey, ChannelDetector] = {}
        self.stores: dict[str, StoreDetector] = {}
        self.pending: dict[ChannelKey, dict[int, WindowView]] = defaultdict(dict)
        # per store: window start -> [refunds, paid orders, complaints] of the channels
        # judged so far
        self.store_sums: dict[str, dict[int, list[int]]] = defaultdict(dict)

    def restore(self, channels: Iterable[ChannelDetector], stores: Iterable[StoreDetector]) -> None:
        for detector in channels:
            self.channels[detector.store_id, detector.channel] = detector
        for store in stores:
            self.stores[store.store_id] = store
            start = store.next_start or 0
            t = self.calendar.thresholds(store.store_id, "", start, start + self.window_ms)
            self._share(store, t)

    def add(self, record: dict[str, Any]) -> None:
        view = WindowView.from_record(record)
        self.pending[view.store_id, view.channel][view.start_ms] = view
        self.witness.add(view.start_ms)

    def context(self, store_id: str, channel: str, start_ms: int) -> Context:
        calendar = self.calendar
        end_ms = start_ms + self.window_ms
        t = calendar.thresholds(store_id, channel, start_ms, end_ms)
        settle_ms = t.transition.settle_windows * self.window_ms
        return Context(
            thresholds=t,
            window_ms=self.window_ms,
            multiplier=calendar.multiplier(store_id, channel, start_ms, end_ms),
            boundary=calendar.near_boundary(store_id, channel, start_ms, end_ms, settle_ms),
            learn=not calendar.holds_baseline(store_id, channel, start_ms, end_ms),
            reference=calendar.reference(store_id, channel),
        )

    def advance(self, frontier_ms: int) -> Advance:
        """Judge the windows before the frontier not judged yet (in order per key)."""
        out = Advance()
        wait_from = frontier_ms - DEFER_WINDOWS * self.window_ms
        due_keys = {key for key, views in self.pending.items() if min(views) < frontier_ms}
        for key in sorted(set(self.channels) | due_keys):
            views = self.pending.get(key, {})
            detector = self.channels.get(key)
            if detector is None:
                if not views:
                    continue
                detector = self.channels[key] = ChannelDetector(store_id=key[0], channel=key[1])
            for start in self._starts(detector.next_start, views, frontier_ms):
                view = views.pop(start, None)
                if view is None:
                    if start not in self.witness:
                        if start >= wait_from:
                            break  # a witness may still come: later windows wait too
                        detector.next_start = start + self.window_ms
                        continue  # no data flowing anywhere: an empty window tells nothing
                    view = WindowView.empty(*key, start, start + self.window_ms)
                out.signals.extend(detector.evaluate(view, self.context(*key, start)))
                detector.next_start = start + self.window_ms
                sums = self.store_sums[key[0]].setdefault(start, [0, 0, 0])
                sums[0] += view.refund_requested
                sums[1] += view.paid_orders
                sums[2] += view.complaints
            if not views:
                self.pending.pop(key, None)
            out.channels.add(key)
            if self._silent(detector, key[0], key[1], frontier_ms):
                out.signals.extend(detector.resolve_all(frontier_ms))
                del self.channels[key]
                self.pending.pop(key, None)
                out.forgotten_channels.add(key)
        for store_id in sorted(set(self.store_sums) | set(self.stores)):
            self._store(store_id, out)
        return out

    def _starts(
        self, next_start: int | None, views: dict[int, WindowView], frontier_ms: int
    ) -> list[int]:
        """Windows to judge: every window from the next one on (empty ones included, at
        most MAX_GAP_WINDOWS of them after a silence) plus those that came."""
        w = self.window_ms
        due = [start for start in views if start < frontier_ms]
        if next_start is None:
            next_start = min(due) if due else frontier_ms
        for start in [s for s in due if s < next_start]:
            del views[start]  # before the key's judged windows: already past
        first = max(next_start, frontier_ms - MAX_GAP_WINDOWS * w)
        starts = set(range(first, frontier_ms, w))
        starts.update(start for start in due if start >= next_start)
        return sorted(starts)

    def _silent(self, detector: ChannelDetector, store_id: str, channel: str, at_ms: int) -> bool:
        """No event for `forget_after_s`: the key is dropped (a channel that was closed)."""
        last = detector.last_active_ms
        if last is None:
            return False
        rule = self.calendar.thresholds(store_id, channel, at_ms, at_ms + 1).traffic
        return at_ms - last > rule.forget_after_s * 1000

    def _store(self, store_id: str, out: Advance) -> None:
        """Judge the store's windows that every channel of it has been judged for."""
        sums = self.store_sums.get(store_id, {})
        channels = [d for key, d in self.channels.items() if key[0] == store_id]
        detector = self.stores.get(store_id)
        if detector is None:
            detector = self.stores[store_id] = StoreDetector(store_id=store_id)
        if not channels:  # every channel forgotten: so is the store
            last = max(sums, default=detector.next_start or 0)
            out.signals.extend(detector.resolve_all(last + self.window_ms))
            del self.stores[store_id]
            self.store_sums.pop(store_id, None)
            self.fleet.forget(store_id)
            out.forgotten_stores.add(store_id)
            return
        limit = min((d.next_start for d in channels if d.next_start is not None), default=None)
        if limit is None:
            return
        for start in sorted(s for s in sums if s < limit):
            refunds, paid, complaints = sums.pop(start)
            if detector.next_start is not None and start < detector.next_start:
                continue
            view = WindowView(store_id, "", start, start + self.window_ms, {"pay": paid}, paid,
                              refund_requested=refunds, complaints=complaints)  # fmt: skip
            ctx = self.context(store_id, "", start)
            ctx = replace(ctx, priors=self._priors(detector, ctx))
            out.signals.extend(detector.evaluate(view, ctx))
            self._share(detector, ctx.thresholds)
            detector.next_start = start + self.window_ms
            out.stores.add(store_id)
        if not sums:
            self.store_sums.pop(store_id, None)

    def _priors(self, store: StoreDetector, ctx: Context) -> dict[str, Prior]:
        """The fleet's prior for each of the store's rates that the other stores give one."""
        priors = {}
        for detector in store.detectors(ctx.thresholds):
            prior = self.fleet.prior(detector.alertname, store.store_id)
            if prior is not None:
                priors[detector.alertname] = prior
        return priors

    def _share(self, store: StoreDetector, t: Thresholds) -> None:
        """Tell the fleet the store's baselines as they are now."""
        for alertname, (successes, trials) in store.baselines(t).items():
            self.fleet.update(alertname, store.store_id, successes, trials)
