"""Produce to and read back from the real broker in tests."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes],
    key: bytes | None = None,
    compression: str | None = None,
) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=compression)
    try:
        for value in values:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def consume(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0, **options: Any
) -> list[ConsumerRecord]:
    """Read a topic from the start until `expected` records arrived or the time is up.
    `options`: more of kafka-python's (the security ones)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
        **options,
    )
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def delete_topics(bootstrap: str, prefixes: Iterable[str], **options: Any) -> None:
    """Delete every topic whose name starts with one of `prefixes`.

    Tests create topics under fresh names; left behind, thousands of them make every
    metadata response (and so every worker) slower for the rest of the run.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **options)
    try:
        starts = tuple(prefixes)
        doomed = [name for name in admin.list_topics() if name.startswith(starts)]
        if doomed:
            admin.delete_topics(doomed, timeout_ms=30_000)
    finally:
        admin.close()


Offsets = dict[TopicPartition, int]


def end_offsets(bootstrap: str, topics: Iterable[str]) -> Offsets:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        return consumer.end_offsets(partitions)  # type: ignore[no-any-return]
    finally:
        consumer.close()


def committed_offsets(admin: KafkaAdminClient, group: str) -> Offsets:
    committed = admin.list_group_offsets(group).get(group, {})
    return {tp: meta.offset for tp, meta in committed.items()}


def behind(bootstrap: str, group: str, targets: Offsets) -> int:
    """Messages before `targets` that the group has not committed yet."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        done = committed_offsets(admin, group)
    finally:
        admin.close()
    return sum(max(0, end - max(0, done.get(tp, 0))) for tp, end in targets.items())
