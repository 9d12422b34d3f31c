"""Where generated events go: ids, `ts` and money representations, the scenario's bounds."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal
from typing import Any

from simulator.clock import IsoFormatter
from simulator.config import ScenarioConfig

__all__ = ["EventSink", "Money", "Record", "as_money"]

Record = tuple[int, int, dict[str, Any]]  # (ts_ms, topic index, event)
Money = tuple[Decimal, str, float]  # one amount: exact, as a decimal string, as a JSON number


class EventSink:
    """Collects events as records and gives them their ids and wire representations.

    Only stock snapshots sit on whole seconds after the start: every other event's ts is
    moved off them by 1 ms, so a snapshot never ties with a stock change and the event-time
    inventory definition is unambiguous.
    """

    def __init__(self, config: ScenarioConfig, rng: random.Random) -> None:
        self.records: list[Record] = []
        # event_id -> ms after its ts before which the event cannot be delivered
        self.held_ms: dict[str, int] = {}
        self.start_ms = config.start_ms
        self.end_ms = config.end_ms
        self._phase = self.start_ms % 1000
        self._prefix = f"{config.id_prefix}-"
        self._ids = itertools.count(1)
        self._iso = IsoFormatter()
        self._iso_rate = config.iso_ts_rate
        self._string_money_rate = config.string_money_rate
        self._random = rng.random

    def place(self, ts_ms: float) -> int:
        """An event time in ms, off the snapshot seconds (may be past the end: check)."""
        ts = int(ts_ms)
        if ts % 1000 == self._phase:
            ts += 1
        return ts

    def next_id(self, kind: str = "e") -> str:
        return f"{self._prefix}{kind}{next(self._ids)}"

    def ts_value(self, ts_ms: int) -> int | str:
        if self._random() < self._iso_rate:
            return self._iso(ts_ms)
        return ts_ms

    def money(self, value: Money) -> str | float:
        return value[1] if self._random() < self._string_money_rate else value[2]

    def add(self, ts_ms: int, topic: int, event: dict[str, Any], held_ms: int = 0) -> None:
        """Record an event; `held_ms` > 0 delivers it no sooner than that after its ts."""
        self.records.append((ts_ms, topic, event))
        if held_ms:
            self.held_ms[event["event_id"]] = held_ms


def as_money(value: Decimal) -> Money:
    return (value, str(value), float(value))
