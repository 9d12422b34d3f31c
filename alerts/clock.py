"""Wall-clock and event-time helpers shared by the alert modules."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["iso_ms", "wall_ms"]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def iso_ms(epoch_ms: int) -> str:
    """RFC 3339 in UTC with milliseconds, as Alertmanager reads and writes times."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
