"""Faust's producer flush, made a barrier: it returns once every record queued before it
was handed to the Kafka client (whose own flush then waits for their acknowledgements).

Faust flushes its producer before it commits offsets, before partitions move and at a stop;
its buffer's flush gives up once 0.1 s pass without a send, with records still queued
(7,651 were seen at a rebalance). A commit then takes the offsets of batches whose table
writes are still in the queue, and a kill right after loses those writes while their
events are not read again: windows short of counts after a worker's SIGKILL
(`benchmarks.differential`). Waiting for the queue to be empty would not do either: the
agents keep adding to it while a commit waits.

`install()` makes the flush put a marker behind the records queued so far and wait until
the buffer's sender reaches it (the queue is first in, first out), for up to
`FLUSH_TIMEOUT_S`, then log what is left.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faust.transport.producer import ProducerBuffer

__all__ = ["FLUSH_TIMEOUT_S", "install"]

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 30.0

_faust_flush = ProducerBuffer.flush


class _Marker:
    """Stands in the queue like a record; the sender "publishes" it by resolving it."""

    def __init__(self) -> None:
        self.reached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.message = self
        self.channel = self

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        if not self.reached.done():
            self.reached.set_result(None)


async def _flush_through(self: ProducerBuffer) -> None:
    app: Any = self.app
    if self.should_stop or app.conf.producer_threaded:
        # Stopping: its sender may be gone (a stage drained the queue before the stop).
        # Threaded: the records are on another loop's queue (not used by salewatch).
        await _faust_flush(self)
        return
    marker = _Marker()
    self.pending.put_nowait(marker)
    try:
        await asyncio.wait_for(asyncio.shield(marker.reached), FLUSH_TIMEOUT_S)
    except TimeoutError:
        log.error(
            "producer: records queued before a flush still unsent after %.0f s (%d queued)",
            FLUSH_TIMEOUT_S,
            self.size,
        )


def install() -> None:
    """Idempotent; before the app's producer starts."""
    ProducerBuffer.flush = _flush_through  # type: ignore[method-assign]
