"""Event time in one place: windows, the lateness rule, input progress and idleness, and
the watermark that closes windows.

Windows are tumbling and aligned to the UTC epoch. An event is late once the stream time
it is judged against has reached its window's end plus grace (`is_late`); stage 1 judges
it against its own input partition's stream time, stage 2 against its watermark, with the
same rule.

Stage 1 keeps, per input partition it reads, the largest event time read and whether the
input is idle: read to its end and nothing new for `idle_ms` since it was assigned, the
stream resumed after a pause, or its fetches were answered again after going unanswered
(a broker away: its end is unknown then, and the backlog its producers hold comes when it
is back) (`InputProgress`), and reports both to every stage-2 partition. The watermark
of a stage-2 partition is the smallest event time read over the inputs that are not idle,
as in Flink: a topic read behind the others, or a producer whose batches reach the broker
late, holds windows open for its own events, so they are never made late by another
input's pace. An idle input holds nothing back; when every input is idle, the watermark
moves on with the wall clock from the largest event time read, so the last windows close
too (docs/contract.md §3). An input counts idle only while its reports keep coming
(`REPORT_STALE_MS`).

Stage 1 stores each input partition's stream time with its offset commit (the commit's
metadata), and whoever reads that partition again from the commit (the process restarted,
or another one that took the partition over) starts from it, so it judges late exactly the
events the first read did.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "InputMark",
    "InputProgress",
    "Watermark",
    "WindowKey",
    "closed_before",
    "input_name",
    "is_late",
    "window_start",
]

WindowKey = tuple[str, str, int]  # store_id, channel, window start (ms)


def input_name(tp: Any) -> str:
    """An input partition's name in progress reports and commits: "topic:partition"."""
    return f"{tp.topic}:{tp.partition}"


def window_start(ts_ms: int, window_ms: int) -> int:
    return ts_ms - ts_ms % window_ms


def is_late(ts_ms: int, stream_ms: int | None, window_ms: int, grace_ms: int) -> bool:
    """The lateness rule: stream time has reached the event's window end plus grace."""
    return (
        stream_ms is not None and window_start(ts_ms, window_ms) + window_ms + grace_ms <= stream_ms
    )


def closed_before(stream_ms: int, window_ms: int, grace_ms: int) -> int:
    """Windows starting before this are closed at `stream_ms` (by `is_late`'s rule)."""
    return window_start(stream_ms - grace_ms, window_ms)


# per input partition ("topic:partition"): largest event time read (None: nothing yet),
# and whether it is idle (stage 1 decides: read to its end and quiet for `idle_ms`)
InputMark = tuple[int | None, bool]

# An input's "idle" holds while stage 1 keeps saying so: it reports every second, and an
# input whose last report is older (stage 1 dead, or the broker away) may have a backlog
# building up; it holds the watermark where its own stream time stands.
REPORT_STALE_MS = 5_000
# A partition's end is known from a fetch answered this recently (aiokafka long-polls an
# input read to its end every 0.5 s); an older answer says nothing of what came since.
END_KNOWN_WITHIN_MS = 3_000


@dataclass
class Watermark:
    window_ms: int
    grace_ms: int
    watermark_ms: int | None = None  # never moves back; persisted per partition
    inputs: dict[str, InputMark] = field(default_factory=dict)
    expected_inputs: int = 0  # input partitions in all; until all reported, nothing closes
    _max_read_ms: int | None = None
    _max_changed_wall_ms: int = 0
    _heard_wall_ms: dict[str, int] = field(default_factory=dict)  # last report, by input

    def report(self, marks: dict[str, Any], expected_inputs: int, wall_ms: int) -> None:
        """Take a stage-1 report: {input: [max_ts | None, idle]} for its partitions.

        An input's stream time never moves back: a stage-1 reader that took a partition over
        (or restarted) and has read nothing new yet reports less than was read before.
        """
        for name, (max_ts, idle) in marks.items():
            known = self.inputs.get(name, (None, True))[0]
            if known is not None and (max_ts is None or max_ts < known):
                max_ts = known
            self.inputs[name] = (max_ts, bool(idle))
            self._heard_wall_ms[name] = wall_ms
        self.expected_inputs = expected_inputs
        self.advance(wall_ms)

    def saved(self) -> dict[str, Any]:
        """What a restarted worker needs: the watermark and each input's stream time."""
        return {
            "watermark_ms": self.watermark_ms,
            "inputs": {name: max_ts for name, (max_ts, _) in self.inputs.items()},
        }

    def restore(self, saved: dict[str, Any]) -> None:
        """Back to `saved`. Inputs count as not idle until stage 1 reports on them again,
        so an input nobody reports on yet holds windows open rather than letting them
        close early. Without the inputs, a worker that took over after every event was
        read (nothing new to read, no watermark yet) would never close a window."""
        self.watermark_ms = saved["watermark_ms"]
        self.inputs = {name: (max_ts, False) for name, max_ts in saved["inputs"].items()}

    def advance(self, wall_ms: int) -> None:
        if len(self.inputs) < self.expected_inputs or not self.inputs:
            return
        read = [max_ts for max_ts, _ in self.inputs.values() if max_ts is not None]
        if read and max(read) != self._max_read_ms:
            self._max_read_ms, self._max_changed_wall_ms = max(read), wall_ms
        active = [
            max_ts
            for name, (max_ts, idle) in self.inputs.items()
            if not idle or wall_ms - self._heard_wall_ms.get(name, wall_ms) > REPORT_STALE_MS
        ]
        if None in active:
            return  # an input that is not idle has not read any event time yet
        if active:
            candidate: int = min(active)  # type: ignore[type-var]
        else:  # every input idle: follow the wall clock since the last new event time
            if self._max_read_ms is None:
                if self.watermark_ms is None:
                    return
                # nothing read since this state was restored: go on from the watermark
                self._max_read_ms, self._max_changed_wall_ms = self.watermark_ms, wall_ms
            candidate = self._max_read_ms + wall_ms - self._max_changed_wall_ms
        if self.watermark_ms is None or candidate > self.watermark_ms:
            self.watermark_ms = candidate

    @property
    def closed_before_ms(self) -> int | None:
        """Windows starting before this are closed (None: nothing is closed yet)."""
        if self.watermark_ms is None:
            return None
        return closed_before(self.watermark_ms, self.window_ms, self.grace_ms)

    def is_late(self, ts_ms: int) -> bool:
        return is_late(ts_ms, self.watermark_ms, self.window_ms, self.grace_ms)


class InputConsumer(Protocol):
    """What `InputProgress` reads of stage 1's consumer (aiokafka's fits)."""

    def assignment(self) -> set[Any]: ...
    def highwater(self, tp: Any) -> int | None: ...
    def last_poll_timestamp(self, tp: Any) -> int | None: ...
    async def position(self, tp: Any) -> int: ...
    def partitions_for_topic(self, topic: str) -> set[int] | None: ...
    def subscription(self) -> set[str]: ...


class InputProgress:
    """Per input partition this process reads: the largest event time read, and whether it
    is idle (read to its end, as a fetch answered in the last `END_KNOWN_WITHIN_MS` says,
    and nothing new for `idle_ms`).

    Reported to every stage-2 partition after batches and every second: the watermark
    (`Watermark`) is built from these reports.
    """

    def __init__(self, consumer: InputConsumer, idle_ms: int) -> None:
        self._consumer = consumer
        self._idle_s = idle_ms / 1000
        self._last_read: dict[str, float] = {}  # monotonic time records last came, by input
        self._last_any_read: float | None = None  # ... from any input
        self.max_ts: dict[str, int] = {}  # the stream time of each input read
        self._committed_ts: dict[str, int] = {}  # max_ts at the last commit

    def observe(self, max_ts: Mapping[str, int], inputs_read: Iterable[Any]) -> None:
        """Take a batch's largest event time per input, and the input partitions it read."""
        for name, ts_ms in max_ts.items():
            if ts_ms > self.max_ts.get(name, -1):
                self.max_ts[name] = ts_ms
        now = time.monotonic()
        names = [input_name(tp) for tp in inputs_read]
        if not names:
            return
        if self._last_any_read is None or now - self._last_any_read >= self._idle_s:
            # The stream resumes after a pause: every input gets `idle_ms` to show it has
            # something, as one just assigned does. A producer sends its topics at about the
            # same time, but one topic's first batches may come a moment after another's
            # (a topic whose events lag in event time, say): idle since before the pause,
            # that input would let the others' event time close its windows before it is read.
            self._last_read = dict.fromkeys(self._last_read, now)
        self._last_any_read = now
        for name in names:
            self._last_read[name] = now

    def assigned(self, names: Iterable[str], committed: Mapping[str, int]) -> None:
        """Input partitions just (re)assigned: they are read again from their last commit,
        so each starts from the stream time stored with that commit (`committed`; none for
        one never committed) and judges late exactly what its first read did."""
        for name in names:
            self.max_ts.pop(name, None)
            self._committed_ts.pop(name, None)
        self.max_ts.update(committed)
        self._committed_ts.update(committed)

    def checkpoint(self) -> None:
        """At a commit: reading again from it must mark the same events late."""
        self._committed_ts = dict(self.max_ts)

    def rewind(self) -> None:
        """Back to the stream time of the last commit, when reading again from it."""
        self.max_ts = dict(self._committed_ts)

    async def report(self) -> tuple[dict[str, Any], dict[str, int]]:
        """The report for stage 2, and the consumer lag by topic."""
        consumer = self._consumer
        now, wall_ms = time.monotonic(), time.time() * 1000
        marks: dict[str, list[Any]] = {}
        lag_by_topic: Counter[str] = Counter()
        for tp in consumer.assignment():
            name = input_name(tp)
            highwater = consumer.highwater(tp)
            position = await consumer.position(tp)
            if highwater is not None:
                lag_by_topic[tp.topic] += max(0, highwater - position)
            read_to_end = highwater is not None and position >= highwater
            answered_ms = consumer.last_poll_timestamp(tp)
            if answered_ms is None or wall_ms - answered_ms > END_KNOWN_WITHIN_MS:
                self._last_read[name] = now  # its end unknown: not quiet, whatever came last
            # a partition just assigned gets `idle_ms` to show it has something
            quiet_s = now - self._last_read.setdefault(name, now)
            marks[name] = [self.max_ts.get(name), read_to_end and quiet_s >= self._idle_s]
        inputs = sum(len(consumer.partitions_for_topic(t) or ()) for t in consumer.subscription())
        return {"marks": marks, "inputs": inputs}, dict(lag_by_topic)
