"""A generated scenario: deliveries in the order to produce them, and the ground truth."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from simulator.config import ScenarioConfig
from simulator.truth import GroundTruth

__all__ = ["Delivery", "Scenario"]


class Delivery(NamedTuple):
    """One event as a producer sends it: to `prefix + topic`, with this key."""

    topic: str  # topic suffix: clicks, carts, orders, aftersales, inventory
    key: bytes | None
    event: dict[str, Any]


@dataclass
class Scenario:
    config: ScenarioConfig
    deliveries: list[Delivery]  # DELIVERY order: out-of-order, late and duplicates applied
    delivered_at_ms: list[int]  # per delivery, when it arrives on the event-time scale
    truth: GroundTruth

    def __len__(self) -> int:
        return len(self.deliveries)

    def events(self, topic: str | None = None) -> Iterator[dict[str, Any]]:
        """Every delivered event (duplicates included), optionally of one topic."""
        for delivery in self.deliveries:
            if topic is None or delivery.topic == topic:
                yield delivery.event

    def deliveries_by_topic(self) -> dict[str, int]:
        return dict(Counter(delivery.topic for delivery in self.deliveries))
