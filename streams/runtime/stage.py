"""What every batched stage agent shares: taking its topic in batches, and dropping its
per-partition cache on a rebalance (the changelog-backed tables stay the truth).

One lock per stage serialises its batches with its other work on the same state (a clock
tick, a rebalance): a batch awaits its sends, and a tick that closed windows in between
would report them closed to stage 3 before this batch's partials of older windows went out,
so stage 3 would finalize those windows without them.

Faust flushes its producer before every commit, before partitions go to another owner and
at a stop; with streams/runtime/flush_barrier.py that flush waits for every table write
queued before it, so nothing here flushes again.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterable, Sequence
from typing import Any

import faust
from faust.types import EventT, TopicT

from streams.runtime.settings import Settings

__all__ = ["BatchedStage"]


class BatchedStage(abc.ABC):
    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.lock = asyncio.Lock()

    def register_agent(self, topic: TopicT, name: str) -> None:
        self.app.agent(topic, name=name)(self._agent)
        self.app.on_partitions_revoked.connect(self._on_partitions_revoked)

    async def _agent(self, stream: AsyncIterable[Any]) -> None:
        s = self.settings
        batches = stream.take_events(s.batch_max_messages, s.batch_within_ms / 1000)  # type: ignore[attr-defined]
        async for batch in batches:
            await self.handle(batch)

    async def handle(self, batch: Sequence[EventT]) -> None:
        async with self.lock:
            await self.process(batch)

    async def _on_partitions_revoked(self, *args: Any, **kwargs: Any) -> None:
        async with self.lock:
            self.forget_partitions()

    @abc.abstractmethod
    async def process(self, batch: Sequence[EventT]) -> None:
        """Handle one batch of events, possibly of several partitions."""

    @abc.abstractmethod
    def forget_partitions(self) -> None:
        """Drop cached per-partition state; it is reloaded from the tables on next use."""
