"""Produce to and read back from the real broker in tests."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
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
