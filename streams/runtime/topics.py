"""The Kafka topics of one app: inputs (docs/contract.md §1), outputs (§4) and internal ones."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TopicT

from streams.contract.events import TopicKind
from streams.runtime.settings import Settings

__all__ = ["METADATA_MAX_AGE_MS", "Topics"]

# How soon a consumer sees a topic created after it subscribed (the clients' default is five
# minutes). A worker creates its internal topics while its consumer joins the group: a group
# leader whose metadata predates them assigns their partitions to nobody until it refreshes,
# and a second worker joining does not refresh it. Found replaying a differential schedule
# (two workers started before the data): one run in three emitted no window at all.
METADATA_MAX_AGE_MS = 5_000


@dataclass(frozen=True)
class Topics:
    inputs: dict[TopicKind, TopicT]
    deadletter: TopicT
    # stage 1 -> stage 2, keyed by the routing key (docs/architecture.md)
    events: TopicT
    # stage 2 -> stage 3: closed partial windows and watermarks, by store x channel
    partials: TopicT
    # stage 2 -> inventory: stock changes keyed by store_id|sku
    stock: TopicT
    windows: TopicT
    alerts: TopicT

    async def create_outputs(self) -> None:
        """Create the output and internal topics if missing (Faust only does it for agents)."""
        for topic in (
            self.deadletter,
            self.events,
            self.partials,
            self.stock,
            self.windows,
            self.alerts,
        ):
            await topic.declare()

    @classmethod
    def declare(cls, app: faust.App, settings: Settings) -> Topics:
        def raw(name: str, **options: object) -> TopicT:
            return app.topic(name, key_type=bytes, value_type=bytes, **options)  # type: ignore[arg-type]

        internal = {"partitions": settings.partitions}
        # internal=True: Faust creates them before its consumer subscribes to them
        routed = {"partitions": settings.partitions, "internal": True}
        return cls(
            inputs={kind: raw(settings.input_topic(kind)) for kind in TopicKind},
            deadletter=raw(settings.output_topic("deadletter"), **internal),
            events=raw(settings.output_topic("events"), **routed),
            partials=raw(settings.output_topic("partials"), **routed),
            stock=raw(settings.output_topic("stock"), **routed),
            windows=raw(settings.output_topic("windows"), **internal),
            alerts=raw(settings.output_topic("alerts"), **internal),
        )
