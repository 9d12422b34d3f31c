"""Stage 3 reads the windows topic back on a restore (streams/merge/emitted.py): on the real
broker, the windows written from a moment on, in every partition, and none before it."""

from __future__ import annotations

import uuid

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from streams.contract.kafka_security import KafkaSecurity
from streams.merge.emitted import windows_since
from tests.support.kafka import delete_topics
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

MOMENT = 1_800_000_000_000  # the records' create times are set around it


async def test_the_windows_written_since_a_moment_in_every_partition(stack: Stack) -> None:
    topic = f"t{uuid.uuid4().hex[:10]}.windows"
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 3, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    try:
        for n in range(30):
            window = {"store_id": f"s{n}", "channel": "app", "window_start": n * 10_000}
            producer.send(topic, partition=n % 3, value=orjson.dumps(window),
                          timestamp_ms=MOMENT + (n - 10) * 1_000)  # fmt: skip
        producer.flush()
        security = KafkaSecurity(security_protocol="PLAINTEXT")
        found = await windows_since(stack.kafka_bootstrap, security, topic, MOMENT)
        assert found == {(f"s{n}", "app", n * 10_000) for n in range(10, 30)}
        assert await windows_since(stack.kafka_bootstrap, security, topic, MOMENT + 60_000) == set()
    finally:
        producer.close()
        delete_topics(stack.kafka_bootstrap, [topic])
