"""Faust's producer flush as a barrier, on Faust's own producer buffer filled to the limit
the worker gives it: Faust flushes before every commit, before partitions move and when the
worker stops, and the stages rely on it (streams/runtime/stage.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.producer import ProducerBuffer

from streams.runtime import flush_barrier
from streams.runtime.producing import changelog_buffer_messages
from streams.runtime.settings import load_settings

STALL_EVERY = 5_000
STALL_S = 0.2  # longer than the 0.1 s Faust's own flush waits for a send


class StallingClient:
    """Where Faust's buffer hands its records over: it stalls now and then, as the Kafka
    client does while it waits for the broker to take a full batch."""

    def __init__(self) -> None:
        self.sent = 0

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        self.sent += 1
        if self.sent % STALL_EVERY == 0:
            await asyncio.sleep(STALL_S)

    def record(self) -> Any:
        """A queued record, as Faust's buffer sees one."""
        return SimpleNamespace(message=SimpleNamespace(channel=self))


@pytest.fixture
async def buffer() -> AsyncIterator[ProducerBuffer]:
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.start()
    yield buffer
    await buffer.stop()


async def test_fausts_flush_leaves_records_queued_where_the_barrier_sends_them(
    buffer: ProducerBuffer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, queued = StallingClient(), changelog_buffer_messages(load_settings())
    for _ in range(queued):
        buffer.put(client.record())
    await flush_barrier._faust_flush(buffer)
    assert buffer.size > 0  # why the barrier exists: a commit now would lose these
    monkeypatch.setattr(ProducerBuffer, "flush", flush_barrier._flush_through)
    await buffer.flush()
    assert client.sent == queued and buffer.size == 0


async def test_the_barrier_does_not_wait_for_records_queued_after_it(
    buffer: ProducerBuffer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agents go on writing while a commit waits: it must not wait for their records."""
    monkeypatch.setattr(ProducerBuffer, "flush", flush_barrier._flush_through)
    client = StallingClient()
    for _ in range(STALL_EVERY):
        buffer.put(client.record())
    flushed = asyncio.create_task(buffer.flush())
    await asyncio.sleep(0)  # the flush puts its marker
    for _ in range(3 * STALL_EVERY):
        buffer.put(client.record())
    await asyncio.wait_for(flushed, 5)
    assert client.sent >= STALL_EVERY
    assert buffer.size > STALL_EVERY  # the later records (two stalls more): not waited for
    await buffer.flush()  # this flush waits for them
    assert buffer.size == 0
