"""Draining the producer before partitions move or the worker stops, on Faust's own
producer buffer filled to the limit the worker gives it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.transport.producer import ProducerBuffer

from streams.runtime.producing import changelog_buffer_messages
from streams.runtime.settings import load_settings
from streams.runtime.stage import BatchedStage, drain

STALL_EVERY = 5_000
STALL_S = 0.2  # longer than the 0.1 s Faust's flush waits for a send


class StallingBuffer(ProducerBuffer):
    """Faust's buffer whose hand-over to the Kafka client stalls now and then, as it does
    while the client waits for the broker to take a full batch."""

    sent = 0

    async def _send_pending(self, fut: Any) -> None:
        self.sent += 1
        if self.sent % STALL_EVERY == 0:
            await asyncio.sleep(STALL_S)


async def test_drain_sends_a_full_buffer_where_fausts_flush_gives_up() -> None:
    queued = changelog_buffer_messages(load_settings())
    buffer = StallingBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.start()
    try:
        for _ in range(queued):
            buffer.put(object())  # type: ignore[arg-type]
        await buffer.flush()
        left_by_flush = buffer.size
        assert left_by_flush > 0  # why `drain` exists: these records would be lost

        app: Any = SimpleNamespace(producer=SimpleNamespace(buffer=buffer, flush=buffer.flush))
        await drain(app)
        assert buffer.size == 0
        assert buffer.sent == queued
    finally:
        await buffer.stop()


class Recording(BatchedStage):
    def __init__(self, app: Any) -> None:
        super().__init__(app, load_settings())
        self.batches: list[Any] = []

    async def process(self, batch: Any) -> None:
        self.batches.append(batch)

    def forget_partitions(self) -> None:
        pass


async def test_a_batch_that_ends_while_the_worker_stops_drains_before_it_is_acked() -> None:
    """Faust commits a batch's offsets when it returns during a stop, after its own flush:
    the batch's queued table writes are sent before that, not left in the buffer."""
    buffer = StallingBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.start()
    try:
        app: Any = SimpleNamespace(
            producer=SimpleNamespace(buffer=buffer, flush=buffer.flush), should_stop=False
        )
        stage = Recording(app)
        for _ in range(2 * STALL_EVERY):
            buffer.put(object())  # type: ignore[arg-type]
        app.should_stop = True
        await stage.handle(["a batch"])  # type: ignore[list-item]
        assert stage.batches == [["a batch"]] and buffer.size == 0
    finally:
        await buffer.stop()
