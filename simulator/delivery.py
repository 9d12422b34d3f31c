"""Delivery order: what arrives when, with out-of-order, late and duplicate events.

Every event gets a delivery time (on the event-time scale):
- most are delivered at their ts (some held back a little: a client retry whose ts is
  before the event it retries is delivered after it);
- out-of-order ones (and every duplicate copy) less than grace/2 after their ts, so at
  their delivery no event with ts beyond their window's end + grace can have arrived:
  never late, in any partition;
- late ones (clicks, carts, orders, after-sales; never inventory) at their window's end
  + 3x grace + up to one grace, or later: not before `_LATE_FOLLOWERS` events of their
  topic with a ts past their window's end + grace have been delivered (and read, whatever
  the linger), so every partition of the topic with a share of its traffic has passed
  their window's end + grace, even for a sparse topic (after-sales): late whatever the
  partitioning. Only where the stream goes on for at least one grace more;
- late duplicates (`late_duplicate_rate`): a copy of an on-time event, delivered as late as
  the late ones: a duplicate (its original was seen on time), whichever copy a pipeline
  that reads partitions unevenly meets first.
Deliveries are ordered by delivery time, ties by ts.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Mapping
from operator import itemgetter
from typing import Any

from simulator.clock import window_start_ms
from simulator.config import KeyMode, ScenarioConfig
from simulator.sink import Record
from simulator.topics import INVENTORY

__all__ = ["Scheduled", "schedule"]

_RANDOM_KEYS = 16
# events of its topic delivered past a late event's window end + grace before it: one of
# 4 partitions left without any of them has odds (3/4)^40, about 1e-5
_LATE_FOLLOWERS = 40


# (delivered_at_ms, ts_ms, topic index, key, event, is a duplicate copy, scheduled late)
Scheduled = tuple[int, int, int, bytes | None, dict[str, Any], bool, bool]


def schedule(
    records: list[Record],
    config: ScenarioConfig,
    rng: random.Random,
    held_ms: Mapping[str, int] | None = None,
) -> list[Scheduled]:
    """`records` sorted by ts; returns every delivery in delivery order.

    `held_ms`: event_id -> delivered no sooner than this after its ts (< grace/2).
    """
    rnd = rng.random
    grace = config.grace_ms
    window = config.window_ms
    max_delay = max(0, (grace - 1) // 2)  # < grace / 2
    late_span = max(grace, 1)
    late_before = config.end_ms - 4 * grace - late_span  # window end must be <= this
    topic_ts: dict[int, list[int]] = {}  # per topic, every ts in order
    for ts, topic, _event in records:
        topic_ts.setdefault(topic, []).append(ts)
    p_late = config.late_rate
    p_shuffled = p_late + config.out_of_order_rate
    p_duplicate = config.duplicate_rate
    p_late_copy = config.late_duplicate_rate
    key_of = _keyer(KeyMode(config.key_mode), rng)
    out: list[Scheduled] = []
    append = out.append

    def late_at(ts: int, topic: int) -> int | None:
        """A delivery time past the window's end + 3x grace and enough of the topic's
        traffic, where the stream goes on for a grace more; None: nowhere."""
        window_end = window_start_ms(ts, window) + window
        if window_end > late_before:
            return None
        at = window_end + 3 * grace + 1 + int(rnd() * late_span)
        times = topic_ts[topic]
        follower = bisect_left(times, window_end + grace) + _LATE_FOLLOWERS - 1
        if follower >= len(times):
            return None
        # a follower is delivered before its ts + grace/2, read before + grace/2 more
        at = max(at, times[follower] + grace)
        return at if at <= config.end_ms - grace else None

    for ts, topic, event in records:
        key = key_of(event)
        draw = rnd()
        if draw < p_late and topic != INVENTORY:
            late = late_at(ts, topic)
            if late is not None:
                append((late, ts, topic, key, event, False, True))
                continue
        at = ts
        if draw < p_shuffled and max_delay:
            at = ts + 1 + int(rnd() * max_delay)
        if held_ms:
            at = max(at, ts + held_ms.get(event["event_id"], 0))
        append((at, ts, topic, key, event, False, False))
        if rnd() < p_duplicate:
            copy_at = at + int(rnd() * (ts + max_delay - at + 1))
            append((copy_at, ts, topic, key, dict(event), True, False))
        if p_late_copy and topic != INVENTORY and rnd() < p_late_copy:
            late = late_at(ts, topic)
            if late is not None:
                append((late, ts, topic, key, dict(event), True, False))
    out.sort(key=itemgetter(0))
    return out


def _keyer(mode: KeyMode, rng: random.Random) -> Any:
    if mode is KeyMode.NONE:
        return lambda event: None
    cache: dict[str, bytes] = {}

    def encoded(text: str) -> bytes:
        value = cache.get(text)
        if value is None:
            value = cache[text] = text.encode()
        return value

    if mode is KeyMode.STORE:
        return lambda event: encoded(event["store_id"])
    if mode is KeyMode.USER:
        return lambda event: encoded(event.get("user_id") or event["store_id"])
    tokens = [f"k{rng.getrandbits(48):012x}".encode() for _ in range(_RANDOM_KEYS)]
    return lambda event: tokens[int(rng.random() * _RANDOM_KEYS)]
