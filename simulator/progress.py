"""A plain progress bar on stderr (no dependencies): redrawn in place on a terminal,
a line per quarter otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]

_WIDTH = 30


class ProgressBar:
    def __init__(self, label: str, stream: TextIO | None = None, enabled: bool = True) -> None:
        self._label = label
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled
        self._tty = self._stream.isatty()
        self._started = time.perf_counter()
        self._last_draw = 0.0
        self._last_quarter = -1
        self._done = False

    def update(self, fraction: float, detail: str = "") -> None:
        if not self._enabled or self._done:
            return
        fraction = min(max(fraction, 0.0), 1.0)
        if self._tty:
            now = time.perf_counter()
            if fraction < 1.0 and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            filled = round(fraction * _WIDTH)
            bar = "#" * filled + "-" * (_WIDTH - filled)
            self._stream.write(f"\r{self._label:<10} [{bar}] {fraction:4.0%} {detail}\x1b[K")
            self._stream.flush()
        else:
            quarter = int(fraction * 4)
            if quarter > self._last_quarter:
                self._last_quarter = quarter
                self._stream.write(f"{self._label}: {fraction:.0%} {detail}\n")
                self._stream.flush()

    def close(self, detail: str = "") -> None:
        if self._done:
            return
        self.update(1.0, detail)
        self._done = True
        if self._enabled and self._tty:
            self._stream.write("\n")
            self._stream.flush()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._started
