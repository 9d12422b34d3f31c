"""Messages that Kafka takes, and a word when it refuses one.

Kafka's default largest message (the broker's `message.max.bytes`) is 1 MB. A producer
whose requests may be larger (streams/runtime/producing.py) accepts a bigger message in
`send()`, and the broker refuses it at delivery. Every message a worker builds from a batch
(stage 1's routed events, stage 2's partials and stock changes) is therefore cut below
`MAX_MESSAGE_BYTES`; and a refused send is logged and counted, since nobody awaits the
delivery of a Faust send (a batch awaiting each one would wait a round trip per message).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from prometheus_client import Counter

__all__ = ["MAX_MESSAGE_BYTES", "fitting_chunks", "watch_delivery"]

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 900 * 1024

T = TypeVar("T")


def fitting_chunks(
    items: list[T], encode: Callable[[list[T]], bytes]
) -> Iterator[tuple[list[T], bytes]]:
    """`items` and their encoding, halved until each part fits one message. A single item
    too big on its own is yielded as it is: the broker refuses it, loudly."""
    payload = encode(items)
    if len(payload) <= MAX_MESSAGE_BYTES or len(items) <= 1:
        yield items, payload
        return
    middle = len(items) // 2
    yield from fitting_chunks(items[:middle], encode)
    yield from fitting_chunks(items[middle:], encode)


def watch_delivery(delivery: asyncio.Future[Any], topic: str, errors: Counter) -> None:
    """Log and count (`errors`, by topic) the send whose delivery this is, if Kafka refuses it."""

    def delivered(future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is None:
            return
        log.error("a message to %s was refused by Kafka: %r", topic, future.exception())
        errors.labels(topic).inc()

    delivery.add_done_callback(delivered)
