"""Ground truth by construction: account for every delivery as the semantics define."""

from __future__ import annotations

from decimal import Decimal

from simulator.config import ScenarioConfig
from simulator.delivery import Scheduled
from simulator.topics import TOPICS
from simulator.truth import GroundTruth, WindowKey, WindowTruth

__all__ = ["account"]

_STAGE_OF = {"impression": "impression", "click": "click", "cart_add": "cart"}


def account(deliveries: list[Scheduled], config: ScenarioConfig) -> GroundTruth:
    """Windows, late events and duplicates of the deliveries, in delivery order."""
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
    seen: set[str] = set()
    created: set[str] = set()
    paid: set[str] = set()
    late = truth.late_event_ids
    by_topic = dict.fromkeys(TOPICS, 0)
    by_type: dict[str, int] = {}
    duplicates = dict.fromkeys(TOPICS, 0)
    late_by_topic = dict.fromkeys(TOPICS, 0)
    stream_ms = -1
    for _at, ts, topic_index, _key, event, _copy, _late in deliveries:
        event_id = event["event_id"]
        topic = TOPICS[topic_index]
        if event_id in seen:
            duplicates[topic] += 1
            stream_ms = max(stream_ms, ts)
            continue
        seen.add(event_id)
        kind = event["type"]
        by_topic[topic] += 1
        by_type[kind] = by_type.get(kind, 0) + 1
        start = ts - ts % window_ms
        if stream_ms >= start + close_after:
            late.add(event_id)
            late_by_topic[topic] += 1
            if kind == "order_created":
                created.add(event["order_id"])
            elif kind == "order_paid":
                paid.add(event["order_id"])
            continue
        if ts > stream_ms:
            stream_ms = ts
        if kind == "stock_snapshot" or kind == "restock" or kind == "stock_adjust":
            continue
        key = (event["store_id"], event["channel"], start)
        window = windows.get(key)
        if window is None:
            window = windows[key] = WindowTruth()
        stage = _STAGE_OF.get(kind)
        if stage is not None:
            window.counts[stage] += 1
            window.users[stage].add(event["user_id"])
        elif kind == "order_created":
            order_id = event["order_id"]
            if order_id not in created:
                created.add(order_id)
                window.counts["order"] += 1
                window.users["order"].add(event["user_id"])
        elif kind == "order_paid":
            order_id = event["order_id"]
            if order_id not in paid:
                paid.add(order_id)
                window.counts["pay"] += 1
                window.users["pay"].add(event["user_id"])
                window.paid_orders += 1
                window.gmv += Decimal(str(event["amount"]))
        elif kind == "payment_failed":
            window.payment_failed += 1
        elif kind == "refund_requested":
            window.refund_requested += 1
    # windows with nothing counted in them (only cancellations, say) are not reported
    truth.windows = {key: w for key, w in windows.items() if _counts(w)}
    truth.events_by_topic = by_topic
    truth.events_by_type = dict(sorted(by_type.items()))
    truth.duplicates = sum(duplicates.values())
    truth.duplicates_by_topic = duplicates
    truth.late_by_topic = late_by_topic
    return truth


def _counts(window: WindowTruth) -> bool:
    return bool(
        any(window.counts.values())
        or window.payment_failed
        or window.refund_requested
        or window.paid_orders
    )
