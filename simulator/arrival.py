"""Arrival schedules: how a producer turns a scenario into Kafka messages, and when.

A scenario's deliveries are in delivery order on the event-time scale. An `Arrival` says
what a producer makes of them:
- `grouping`, `max_events` (1 to 10,000 per batch) and `linger_ms`: simulator/batching.py
  (`linger_ms=1000` flushes a slot's partial batch once the stream has moved 1 s of event
  time past its first event);
- `lag_topic` / `lag_ms`: one topic's batches go out that much event time after the
  others' (another interleaving of the topics; each topic keeps its own order);
- `speed`: event time per wall second (60: one event-minute per second), or None: as fast
  as the broker takes it.
Message keys come from the scenario (`ScenarioConfig.key_mode`: store, user, random, none).

`starting_ago()` moves a scenario into the past, for a backfill: the worker rejects events
more than 5 minutes ahead of its clock, so events must not be sent before their time.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import datetime

from simulator.batching import MAX_BATCH_EVENTS, Batch, Grouping, batches
from simulator.clock import CST
from simulator.config import ScenarioConfig
from simulator.errors import SimulatorError
from simulator.scenario import Scenario
from simulator.topics import TOPICS

__all__ = ["Arrival", "starting_ago"]


@dataclass(frozen=True)
class Arrival:
    """How a producer sends a scenario (see the module docstring)."""

    max_events: int = 500
    linger_ms: int | None = None
    grouping: Grouping = Grouping.TOPIC_KEY
    lag_topic: str | None = None
    lag_ms: int = 0
    speed: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_events <= MAX_BATCH_EVENTS:
            raise SimulatorError(f"max_events must be in 1..{MAX_BATCH_EVENTS}")
        if self.lag_topic is not None and self.lag_topic not in TOPICS:
            raise SimulatorError(f"lag_topic must be one of {', '.join(TOPICS)}")
        if self.lag_ms < 0:
            raise SimulatorError("lag_ms must be >= 0")
        if self.speed is not None and self.speed <= 0:
            raise SimulatorError("speed must be positive (or None: as fast as possible)")

    def messages(self, scenario: Scenario) -> list[Batch]:
        """The messages in the order to send them; `first_at_ms` says when (paced)."""
        messages = batches(
            scenario, self.max_events, linger_ms=self.linger_ms, grouping=self.grouping
        )
        if self.lag_topic is None or not self.lag_ms:
            return messages
        lagged = [
            dataclasses.replace(m, first_at_ms=m.first_at_ms + self.lag_ms)
            for m in messages
            if m.topic == self.lag_topic
        ]
        others = [m for m in messages if m.topic != self.lag_topic]
        out: list[Batch] = []
        i = j = 0
        while i < len(others) and j < len(lagged):
            if lagged[j].first_at_ms <= others[i].first_at_ms:
                out.append(lagged[j])
                j += 1
            else:
                out.append(others[i])
                i += 1
        return out + others[i:] + lagged[j:]


def starting_ago(
    config: ScenarioConfig, seconds: float, now_ms: int | None = None
) -> ScenarioConfig:
    """The config with its start `seconds` before now (a whole second)."""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    start_ms = (now - round(seconds * 1000)) // 1000 * 1000
    return dataclasses.replace(config, start=datetime.fromtimestamp(start_ms / 1000, CST))
