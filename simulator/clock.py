"""Event-time helpers: the store's time zone, window alignment and `ts` formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

__all__ = [
    "CST",
    "IsoFormatter",
    "epoch_ms",
    "next_local_midnight_ms",
    "ts_ms_of",
    "window_start_ms",
]

CST = timezone(timedelta(hours=8), "CST")  # China Standard Time, where Double 11 happens
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError("datetime needs a time zone")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def ts_ms_of(ts: int | str) -> int:
    """Epoch milliseconds of an event's `ts` as the simulator writes it (ms or ISO-8601)."""
    return ts if isinstance(ts, int) else epoch_ms(datetime.fromisoformat(ts))


def window_start_ms(ts_ms: int, window_ms: int) -> int:
    """Tumbling windows aligned to the UTC epoch (docs/architecture.md)."""
    return ts_ms - ts_ms % window_ms


def next_local_midnight_ms(start_ms: int, tz: timezone = CST) -> int:
    """The first local midnight at or after `start_ms`."""
    local = datetime.fromtimestamp(start_ms / 1000, tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if midnight < local:
        midnight += timedelta(days=1)
    return epoch_ms(midnight)


class IsoFormatter:
    """`ts` as ISO-8601 with milliseconds and the zone's offset (+08:00), cached per second."""

    __slots__ = ("_cache", "_suffix", "_tz")

    def __init__(self, tz: timezone = CST) -> None:
        self._tz = tz
        self._cache: dict[int, str] = {}
        offset = datetime(2000, 1, 1, tzinfo=tz).isoformat()[-6:]  # "+08:00"
        self._suffix = offset

    def __call__(self, ts_ms: int) -> str:
        seconds, millis = divmod(ts_ms, 1000)
        prefix = self._cache.get(seconds)
        if prefix is None:
            local = datetime.fromtimestamp(seconds, self._tz)
            prefix = local.replace(tzinfo=None).isoformat(timespec="seconds")
            self._cache[seconds] = prefix
        return f"{prefix}.{millis:03d}{self._suffix}"
