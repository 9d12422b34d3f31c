"""Ground truth by construction: account for every delivery as the semantics define.

Each delivery ends in exactly one outcome (OUTCOMES), in delivery order:
- late: the largest ts delivered before it (on its input stream, see below) is at or past
  its window's end + grace, and its event_id was not seen before (it is then remembered as
  seen late);
- duplicate: late with an event_id already seen (on time or late), or on time with an
  event_id already seen ON TIME (a late copy never makes its on-time original a duplicate);
- counted: on time and it counts in a window (impression, click, cart_add,
  payment_failed, refund_requested, return_received, complaint; the order_created /
  order_paid that wins its order);
- ignored: on time and valid but counted in no window (cart_remove, order_cancelled,
  refund_completed, inventory events, and the order_created / order_paid that lose their
  order).
Of each order's on-time, non-duplicate order_created events the one with the smallest
(ts, event_id) counts for the `order` stage; likewise order_paid for `pay`, paid orders and
GMV; each in its own window with its own user_id, whatever the arrival order. The counted
paid orders of each store, in (ts, event_id) order, decide new and returning buyers.

Input streams: a scenario's own truth (`account`) judges lateness against everything
delivered before, on one stream; the scenario makes its late events late on every
partition of their topic with high odds. `account_as_sent` judges each event against its
own Kafka partition, in the order the messages were sent, as the pipeline does (stage 1
judges lateness per input partition, docs/architecture.md): the exact truth of one run.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from simulator.batching import Batch
from simulator.clock import ts_ms_of
from simulator.config import ScenarioConfig
from simulator.delivery import Scheduled
from simulator.scenario import Scenario
from simulator.topics import ORDERS, TOPICS
from simulator.truth import OUTCOMES, GroundTruth, WindowKey, WindowTruth

__all__ = ["account", "account_as_sent"]

_STAGE_OF = {"impression": "impression", "click": "click", "cart_add": "cart"}
_INVENTORY_TYPES = frozenset(("stock_snapshot", "restock", "stock_adjust"))
# candidate of an order: (ts, event_id, window key, event)
_Candidate = tuple[int, str, WindowKey, dict[str, Any]]


def account(
    deliveries: list[Scheduled],
    config: ScenarioConfig,
    streams: Sequence[Hashable] | None = None,
) -> GroundTruth:
    """Windows, outcomes, late events and duplicates of the deliveries, in delivery order.

    `streams[i]`: the input stream delivery i is read from, its lateness judged against
    that stream's largest ts so far; None: one stream for all.
    """
    truth = GroundTruth(
        start_ms=config.start_ms,
        end_ms=config.end_ms,
        window_ms=config.window_ms,
        grace_ms=config.grace_ms,
        dedup_horizon_ms=config.dedup_horizon_ms,
        deliveries=len(deliveries),
    )
    window_ms = config.window_ms
    close_after = window_ms + config.grace_ms  # window end + grace, from the window start
    windows: dict[WindowKey, WindowTruth] = {}
    seen_on_time: set[str] = set()
    seen_late: set[str] = set()
    created: dict[str, _Candidate] = {}  # order_id -> smallest (ts, event_id) so far
    paid: dict[str, _Candidate] = {}
    late = truth.late_event_ids
    by_topic = dict.fromkeys(TOPICS, 0)
    by_type: dict[str, int] = {}
    outcomes = {topic: dict.fromkeys(OUTCOMES, 0) for topic in TOPICS}
    candidates = 0  # on-time, non-duplicate order_created / order_paid
    stream_ms: dict[Hashable, int] = {}  # per input stream, the largest ts so far
    for index, (_at, ts, topic_index, _key, event, _copy, _late) in enumerate(deliveries):
        event_id = event["event_id"]
        topic = TOPICS[topic_index]
        start = ts - ts % window_ms
        stream = None if streams is None else streams[index]
        read_ms = stream_ms.get(stream, -1)
        is_late = read_ms >= start + close_after
        if ts > read_ms:
            stream_ms[stream] = ts
        if event_id in seen_on_time or (is_late and event_id in seen_late):
            outcomes[topic]["duplicate"] += 1
            continue
        kind = event["type"]
        by_topic[topic] += 1
        by_type[kind] = by_type.get(kind, 0) + 1
        if is_late:
            seen_late.add(event_id)
            late.add(event_id)
            outcomes[topic]["late"] += 1
            continue
        seen_on_time.add(event_id)
        if kind in _INVENTORY_TYPES:
            outcomes[topic]["ignored"] += 1
            continue
        key = (event["store_id"], event["channel"], start)
        window = windows.get(key)
        if window is None:
            window = windows[key] = WindowTruth()
        stage = _STAGE_OF.get(kind)
        if stage is not None:
            window.counts[stage] += 1
            window.users[stage].add(event["user_id"])
            if stage != "cart":
                _count_traffic(window, stage, event)
        elif kind == "order_created" or kind == "order_paid":
            _offer(created if kind == "order_created" else paid, (ts, event_id, key, event))
            candidates += 1
            continue  # counted or ignored once every candidate is known
        elif kind == "payment_failed":
            window.payment_failed += 1
        elif kind == "refund_requested":
            window.refund_requested += 1
            window.refund_amount += Decimal(str(event["amount"]))
        elif kind == "return_received":
            window.returns += 1
        elif kind == "complaint":
            window.complaints += 1
        else:
            outcomes[topic]["ignored"] += 1
            continue
        outcomes[topic]["counted"] += 1
    order_outcomes = outcomes[TOPICS[ORDERS]]
    for _ts, _id, key, event in created.values():
        window = windows[key]
        window.counts["order"] += 1
        window.users["order"].add(event["user_id"])
    for _ts, _id, key, event in paid.values():
        window = windows[key]
        window.counts["pay"] += 1
        window.users["pay"].add(event["user_id"])
        window.paid_orders += 1
        window.gmv += Decimal(str(event["amount"]))
    _classify_buyers(paid.values(), windows, config.buyer_lookback_ms)
    order_outcomes["counted"] += len(created) + len(paid)
    order_outcomes["ignored"] += candidates - len(created) - len(paid)
    # windows with nothing counted in them (only cancellations, say) are not reported
    truth.windows = {key: w for key, w in windows.items() if _counts(w)}
    truth.events_by_topic = by_topic
    truth.events_by_type = dict(sorted(by_type.items()))
    truth.duplicates_by_topic = {topic: outcomes[topic]["duplicate"] for topic in TOPICS}
    truth.duplicates = sum(truth.duplicates_by_topic.values())
    truth.late_by_topic = {topic: outcomes[topic]["late"] for topic in TOPICS}
    truth.outcomes_by_topic = outcomes
    return truth


def account_as_sent(
    scenario: Scenario, messages: Sequence[Batch], partitions: Sequence[int]
) -> GroundTruth:
    """`account` of the scenario as it was sent: `messages` in the order sent, message i to
    partition `partitions[i]` of its topic (as the broker acknowledged). Windows, outcomes,
    late events and duplicates; not the inventory nor the alerts."""
    deliveries: list[Scheduled] = []
    streams: list[tuple[str, int]] = []
    for message, partition in zip(messages, partitions, strict=True):
        topic_index = TOPICS.index(message.topic)
        for event in message.events:
            deliveries.append((0, ts_ms_of(event["ts"]), topic_index, None, event, False, False))
            streams.append((message.topic, partition))
    return account(deliveries, scenario.config, streams)


def _offer(best: dict[str, _Candidate], candidate: _Candidate) -> None:
    """Keep the candidate with the smallest (ts, event_id) of its order."""
    order_id = candidate[3]["order_id"]
    current = best.get(order_id)
    if current is None or candidate[:2] < current[:2]:
        best[order_id] = candidate


def _count_traffic(window: WindowTruth, stage: str, event: dict[str, Any]) -> None:
    index = 0 if stage == "impression" else 1
    for name, by in (("source", window.by_source), ("category", window.by_category)):
        value = event.get(name)
        if value is not None:
            by.setdefault(value, [0, 0])[index] += 1


def _classify_buyers(
    paid: Iterable[_Candidate], windows: dict[WindowKey, WindowTruth], lookback_ms: int
) -> None:
    """New or returning, per window and paying user, by the user's earliest paid order in
    the window: a first purchase by the store's flag, or with no paid order of the user at
    the store within the lookback before it."""
    last_paid: dict[tuple[str, str], int] = {}  # (store, user) -> ts of the latest paid order
    decided: set[tuple[WindowKey, str]] = set()
    for ts, _id, key, event in sorted(paid, key=lambda candidate: candidate[:2]):
        buyer = (event["store_id"], event["user_id"])
        previous = last_paid.get(buyer)
        last_paid[buyer] = ts
        if (key, buyer[1]) in decided:
            continue  # the user's earlier order in this window decided it
        decided.add((key, buyer[1]))
        first = event.get("first_purchase")
        if first is None:
            first = previous is None or ts - previous > lookback_ms
        window = windows[key]
        (window.new_buyers if first else window.returning_buyers).add(buyer[1])


def _counts(window: WindowTruth) -> bool:
    return bool(
        any(window.counts.values())
        or window.payment_failed
        or window.refund_requested
        or window.returns
        or window.complaints
        or window.paid_orders
    )
