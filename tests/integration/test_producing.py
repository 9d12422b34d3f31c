"""A record is not stranded in the Kafka client by a send to another, newer topic.

aiokafka asks the broker for the metadata of all topics until its first send to a topic it
does not know; from then on only for the topics added. A record for a topic known from an
all-topics answer (never added) loses its partition leader at the next answer and waits
until it expires. `producing.install()` adds every topic a producer sends to
(streams/runtime/producing.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.runtime import producing
from tests.support.kafka import delete_topics
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

LINGER_MS = 3_000


@pytest.fixture
async def topics(stack: Stack) -> AsyncIterator[tuple[str, str]]:
    """(known, newer): `known` exists before the producer starts, `newer` after it."""
    run = uuid.uuid4().hex[:10]
    known, newer = f"stranded-{run}-known", f"stranded-{run}-newer"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(known, 2, 1)])
        yield known, newer
    finally:
        await admin.close()
        delete_topics(stack.kafka_bootstrap, [f"stranded-{run}-"])


async def deliveries(bootstrap: str, known: str, newer: str) -> tuple[bool, bool]:
    """Send to `known`, then at once to `newer`; whether each is delivered within 10 s of
    its linger."""
    # the record to `known` lingers until well after the send to `newer` has its metadata
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=LINGER_MS)
    await producer.start()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        while producer.client.cluster.partitions_for_topic(known) is None:  # just created
            await producer.client.force_metadata_update()  # none added yet: all topics
            await asyncio.sleep(0.1)
        await admin.create_topics([NewTopic(newer, 2, 1)])
        to_known = await producer.send(known, b"state", partition=1)
        to_newer = await producer.send(newer, b"alert", partition=0)  # metadata: `newer` only?
        done, _ = await asyncio.wait([to_known, to_newer], timeout=LINGER_MS / 1000 + 10)
        return to_known in done, to_newer in done
    finally:
        await admin.close()
        producer.client.add_topic(known)  # a stranded record goes out now: a quick stop
        await producer.stop()


async def test_without_it_the_record_to_the_known_topic_is_stranded(
    stack: Stack, topics: tuple[str, str]
) -> None:
    installed = AIOKafkaProducer.send
    AIOKafkaProducer.send = producing._aiokafka_send  # type: ignore[method-assign]
    try:
        assert await deliveries(stack.kafka_bootstrap, *topics) == (False, True)
    finally:
        AIOKafkaProducer.send = installed  # type: ignore[method-assign]


async def test_installed_both_records_are_delivered(stack: Stack, topics: tuple[str, str]) -> None:
    producing.install()
    assert await deliveries(stack.kafka_bootstrap, *topics) == (True, True)
