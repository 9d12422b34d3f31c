"""Which final windows already reached `salewatch.windows`: read back from the topic when
stage 3 restores a partition, so that neither a window nor the mark that says it was
emitted can be lost alone in a crash (streams/merge/agent.py, docs/architecture.md "After a
crash")."""

from __future__ import annotations

import asyncio
import logging

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.contract.kafka_security import KafkaSecurity
from streams.eventtime import WindowKey
from streams.merge.partition import window_key

__all__ = ["windows_since"]

log = logging.getLogger(__name__)

# how long to wait for one fetch while reading up to the end offsets, and for all of it
FETCH_TIMEOUT_MS = 500
READ_BACK_TIMEOUT_S = 30.0


async def windows_since(
    bootstrap: str, security: KafkaSecurity, topic: str, since_ms: int
) -> set[WindowKey] | None:
    """The windows written to `topic` at or after `since_ms` (the records' create time, the
    producer's clock), up to the end of every partition as it is now. None (logged) when
    the topic could not be read within READ_BACK_TIMEOUT_S: stage 3 then goes on without,
    as it would rather take the small risk of a crash's window than stop."""
    reading = asyncio.ensure_future(_read(bootstrap, security, topic, since_ms))
    try:
        # waited for, not awaited under a timeout: a client that does not take the
        # cancellation promptly must not hold stage 3
        done, _ = await asyncio.wait({reading}, timeout=READ_BACK_TIMEOUT_S)
    finally:
        if not reading.done():
            reading.cancel()
    if not done:
        log.error("%s: not read back within %g s", topic, READ_BACK_TIMEOUT_S)
        return None
    if reading.exception() is not None:
        log.error("%s: cannot read it back: %r", topic, reading.exception())
        return None
    return reading.result()


async def _read(
    bootstrap: str, security: KafkaSecurity, topic: str, since_ms: int
) -> set[WindowKey]:
    consumer = AIOKafkaConsumer(
        topic,  # subscribed only for its metadata: the partitions are assigned below
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        **security.client_options(),
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.unsubscribe()
        if not partitions:
            return set()
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
        for tp in partitions:
            found = starts.get(tp)
            consumer.seek(tp, ends[tp] if found is None else found.offset)
        windows: set[WindowKey] = set()
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            fetched = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS)
            for tp, records in fetched.items():
                for record in records:
                    if record.offset < ends[tp] and record.value is not None:
                        windows.add(window_key(orjson.loads(record.value)))
        return windows
    finally:
        await consumer.stop()
