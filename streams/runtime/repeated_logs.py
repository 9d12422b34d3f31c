"""Repeated log lines once, with a count: a broker that is down makes the Kafka clients log
"Unable connect to node ..." about a thousand times a second.

A warning or error whose logger and message template were already logged within `window_s`
is dropped and counted; the first one after the window carries the count of those dropped
("... [and 8,391 more like it in the last 30 s]"). Keyed by the template, not the
formatted text, so a message that differs only in its arguments is the same message.
A record logged with `extra=EVERY_TIME` always passes: each is news (an alert's change of
state; the filter once kept all but the first of a sale's alerts out of the log).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["EVERY_TIME", "RepeatFilter", "install"]

WINDOW_S = 30.0
EVERY_TIME = {"salewatch_every_time": True}


class RepeatFilter(logging.Filter):
    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._window_s = window_s
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}  # (logger, template) -> last shown
        self._dropped: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or getattr(record, "salewatch_every_time", False):
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        shown = self._last.get(key)
        if shown is not None and now - shown < self._window_s:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return False
        self._last[key] = now
        dropped = self._dropped.pop(key, 0)
        if dropped:
            record.msg = (
                f"{record.msg} [and {dropped:,} more like it in the last {self._window_s:g} s]"
            )
        return True


def install(logger: logging.Logger | None = None) -> RepeatFilter:
    """On every handler of `logger` (the root logger by default): handler filters see the
    records of every logger that propagates to them."""
    repeat_filter = RepeatFilter()
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(repeat_filter)
    return repeat_filter
