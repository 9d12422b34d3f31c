"""Event-time tumbling windows and the stream clock of one partition.

Windows are aligned to the UTC epoch. A partition's stream time is the largest event time
it has seen; when the partition is quiet for `idle_ms` it advances by the wall clock, so a
quiet partition cannot hold windows open forever (CONTRACT.md §3). A window is closed once
stream time reaches its end plus grace; events for a closed window are late.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StreamClock", "window_start"]


def window_start(ts_ms: int, window_ms: int) -> int:
    return ts_ms - ts_ms % window_ms


@dataclass
class StreamClock:
    window_ms: int
    grace_ms: int
    idle_ms: int
    stream_ms: int | None = None  # None until the partition saw its first event
    last_event_wall_ms: int = 0
    last_advance_wall_ms: int = 0

    def observe(self, ts_ms: int, wall_ms: int) -> None:
        if self.stream_ms is None or ts_ms > self.stream_ms:
            self.stream_ms = ts_ms
        self.last_event_wall_ms = self.last_advance_wall_ms = wall_ms

    def advance_if_idle(self, wall_ms: int) -> bool:
        """Move stream time on by the wall-clock time passed while idle; True if it moved."""
        if self.stream_ms is None or not self.is_idle(wall_ms):
            return False
        self.stream_ms += wall_ms - self.last_advance_wall_ms
        self.last_advance_wall_ms = wall_ms
        return True

    def is_idle(self, wall_ms: int) -> bool:
        return wall_ms - self.last_event_wall_ms >= self.idle_ms

    @property
    def closed_before_ms(self) -> int | None:
        """Windows starting before this are closed (None: nothing seen, nothing closed)."""
        if self.stream_ms is None:
            return None
        # [ws, ws + window) is closed iff stream >= ws + window + grace
        return window_start(self.stream_ms - self.grace_ms, self.window_ms)

    def is_late(self, ts_ms: int) -> bool:
        closed_before = self.closed_before_ms
        return closed_before is not None and window_start(ts_ms, self.window_ms) < closed_before
