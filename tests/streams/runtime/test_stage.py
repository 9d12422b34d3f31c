"""Draining the producer before partitions move or the worker stops."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from streams.runtime.stage import drain


class SlowProducer:
    """Like Faust's: `flush` gives up while records are still queued (it returns once
    0.1 s pass without a send); here each call sends 100 of them."""

    def __init__(self, queued: int) -> None:
        self.buffer = SimpleNamespace(size=queued)
        self.flushes = 0

    async def flush(self) -> None:
        self.flushes += 1
        self.buffer.size = max(0, self.buffer.size - 100)


async def test_drain_flushes_until_nothing_is_queued() -> None:
    producer = SlowProducer(queued=750)
    app: Any = SimpleNamespace(producer=producer)
    await drain(app)
    assert producer.buffer.size == 0
    assert producer.flushes == 8  # one flush would have left 650 records behind
