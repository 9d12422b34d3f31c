"""Event-time tumbling windows and the watermark that closes them.

Windows are aligned to the UTC epoch. Stage 1 reports, per input partition, the largest
event time it has read and whether it is idle (read to its end and nothing new for
`idle_ms`). The watermark of a stage-2
partition is the smallest event time read over the inputs that are not idle, as in Flink:
a topic read behind the others, or a producer whose batches reach the broker late, holds
windows open for its own events, so they are never made late by another input's pace. An
idle input holds nothing back; when every input is idle, the watermark moves on with the
wall clock from the largest event time read, so the last windows close too (CONTRACT.md
§3). A window is closed once the watermark reaches its end plus grace; its events then
are late.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["InputMark", "Watermark", "window_start"]


def window_start(ts_ms: int, window_ms: int) -> int:
    return ts_ms - ts_ms % window_ms


# per input partition ("topic:partition"): largest event time read (None: nothing yet),
# and whether it is idle (stage 1 decides: read to its end and quiet for `idle_ms`)
InputMark = tuple[int | None, bool]


@dataclass
class Watermark:
    window_ms: int
    grace_ms: int
    watermark_ms: int | None = None  # never moves back; persisted per partition
    inputs: dict[str, InputMark] = field(default_factory=dict)
    expected_inputs: int = 0  # input partitions in all; until all reported, nothing closes
    _max_read_ms: int | None = None
    _max_changed_wall_ms: int = 0

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
        self.expected_inputs = expected_inputs
        self.advance(wall_ms)

    def advance(self, wall_ms: int) -> None:
        if len(self.inputs) < self.expected_inputs or not self.inputs:
            return
        read = [max_ts for max_ts, _ in self.inputs.values() if max_ts is not None]
        if read and max(read) != self._max_read_ms:
            self._max_read_ms, self._max_changed_wall_ms = max(read), wall_ms
        active = [max_ts for max_ts, idle in self.inputs.values() if not idle]
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
        # [ws, ws + window) is closed iff watermark >= ws + window + grace
        return window_start(self.watermark_ms - self.grace_ms, self.window_ms)

    def is_late(self, ts_ms: int) -> bool:
        closed_before = self.closed_before_ms
        return closed_before is not None and window_start(ts_ms, self.window_ms) < closed_before
