"""Issue: dead letters never vanish, and stage 1 commits nothing Kafka did not acknowledge.

Real broker and worker: ~1 MiB invalid messages become truncated dead letters (their full
size over the broker's limit once the headers are added), and a dead-letter topic that
refuses a record holds stage 1 (not committed, /health 503) until it takes it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from streams.contract.deadletter import MAX_DEADLETTER_BYTES
from tests.support.events import make_event
from tests.support.kafka import consume
from tests.support.worker import Worker, WorkerFactory

pytestmark = pytest.mark.integration

TOKEN = "t" * 16
MIB = 1024 * 1024


def create_topic(bootstrap: str, name: str, **configs: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, 4, 1, topic_configs=configs)])
    finally:
        admin.close()


def set_topic_config(bootstrap: str, name: str, **configs: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=configs)])
    finally:
        admin.close()


def committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> list[Any]:
    """Send (key, value) records of up to 4 MiB; their metadata (partition, offset)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4 * MIB)
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        producer.flush()
        return [future.get(timeout=30) for future in futures]
    finally:
        producer.close()


def end_offsets_total(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def total(worker: Worker, metric: str, **labels: str) -> float:
    """Sum of a metric's samples on the worker whose labels include `labels`."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(worker.metrics())
        for sample in family.samples
        if sample.name == metric and labels.items() <= sample.labels.items()
    )


def wait_until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert check()


def post(worker: Worker, path: str, body: bytes) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    request = urllib.request.Request(worker.url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_every_rejection_reaches_the_dead_letter_topic_oversized_ones_truncated(
    workers: WorkerFactory,
) -> None:
    bootstrap = workers.stack.kafka_bootstrap
    clicks, deadletter = workers.input_topic("clicks"), workers.output_topic("deadletter")
    create_topic(bootstrap, clicks, **{"max.message.bytes": str(4 * MIB)})
    create_topic(bootstrap, workers.input_topic("carts"), **{"max.message.bytes": "1024"})
    worker = workers.start(ingest_token=TOKEN)

    # Over HTTP: a body under the 1 MiB limit whose dead letter (with headers) is over it.
    http_body = b"[" + b"h" * (MIB - 64)
    status, answer = post(worker, "/ingest/clicks", http_body)
    assert status == 400, answer
    assert answer["errors"][0]["reason"] == "invalid_json"
    # A valid batch its input topic can never take: not "retry later".
    status, answer = post(worker, "/ingest/carts", orjson.dumps([make_event("cart_add")] * 20))
    assert status == 413, answer
    assert "too large" in answer["error"]

    oversized: dict[bytes | None, bytes] = {
        b"big-0": b"[" + b"x" * (MIB - 1),  # invalid_json, exactly 1 MiB
        b"big-1": b"{" + b"y" * (MIB - 100),  # invalid_json
        b"big-2": b"[" + b"z" * (MIB + MIB // 2),  # batch_too_large: over 1 MiB
    }
    valid = [make_event("click", event_id=f"v-{i}", store_id=f"s{i % 7}") for i in range(200)]
    mixed = [make_event("click", event_id=f"m-{i}") for i in range(10)]
    mixed += [make_event("click", event_id=f"bad-{i}", channel="NOT OK") for i in range(5)]
    records: list[tuple[bytes | None, bytes]] = [
        (f"s{i}".encode(), orjson.dumps(valid[i : i + 5])) for i in range(0, 200, 5)
    ]
    records += [(b"mixed", orjson.dumps(mixed))]
    records += [(f"before-{i}".encode(), b"{before %d" % i) for i in range(100)]
    records += list(oversized.items())
    records += [(f"after-{i}".encode(), b"{after %d" % i) for i in range(300)]
    produce(bootstrap, clicks, records)
    rejections = 1 + 5 + 100 + len(oversized) + 300

    wait_until(lambda: total(worker, "salewatch_deadletter_total") >= rejections)
    wait_until(lambda: total(worker, "salewatch_events_total") >= 210)
    letters = consume(bootstrap, deadletter, expected=rejections, timeout_s=60)
    assert len(letters) == rejections
    assert end_offsets_total(bootstrap, deadletter) == rejections
    assert total(worker, "salewatch_deadletter_total") == rejections
    assert total(worker, "salewatch_events_total", topic=clicks) == 210

    truncated = [r for r in letters if dict(r.headers).get("salewatch.truncated") == b"true"]
    originals = {**oversized, None: http_body}
    assert sorted(r.key or b"" for r in truncated) == sorted(k or b"" for k in originals)
    for record in truncated:
        headers = dict(record.headers)
        original = originals[record.key]
        assert headers["salewatch.original.size"] == str(len(original)).encode()
        assert original.startswith(record.value)
        size = len(record.key or b"") + len(record.value)
        assert size + sum(len(k) + len(v) for k, v in record.headers) <= MAX_DEADLETTER_BYTES
        assert headers["salewatch.original.topic"] == clicks.encode()

    # Dead letters of the messages after the oversized ones went to every partition.
    after = {r.partition for r in letters if r.value.startswith(b"{after ")}
    assert after == {0, 1, 2, 3}
    assert total(worker, "salewatch_produce_errors_total") == 0
    assert worker.get("/health")[0] == 200


def test_a_refused_dead_letter_is_not_committed_health_fails_then_recovers(
    workers: WorkerFactory,
) -> None:
    bootstrap = workers.stack.kafka_bootstrap
    clicks, deadletter = workers.input_topic("clicks"), workers.output_topic("deadletter")
    create_topic(bootstrap, clicks)
    create_topic(bootstrap, deadletter, **{"max.message.bytes": "1024"})  # too small
    worker = workers.start()

    valid = [(b"s1", orjson.dumps(make_event("click", event_id=f"v-{i}"))) for i in range(20)]
    [*_, bad] = produce(bootstrap, clicks, [*valid, (b"s1", b"{" + b"q" * 4096)])
    bad_input = TopicPartition(clicks, bad.partition)
    group = f"salewatch-{workers.run_id}-ingest"

    wait_until(lambda: worker.get("/health")[0] == 503, timeout=30)
    body = worker.get("/health")[1]
    assert json.loads(body)["ingest_failing"] is True
    assert total(worker, "salewatch_produce_errors_total", topic=deadletter) >= 1
    assert committed(bootstrap, group).get(bad_input, 0) <= bad.offset
    assert total(worker, "salewatch_deadletter_total") == 0  # counted once written
    assert "sends failed" in worker.log()

    set_topic_config(bootstrap, deadletter, **{"max.message.bytes": str(MIB)})
    wait_until(lambda: worker.get("/health")[0] == 200)
    wait_until(lambda: committed(bootstrap, group).get(bad_input, 0) > bad.offset)
    wait_until(lambda: total(worker, "salewatch_events_total", topic=clicks) == 20)
    assert total(worker, "salewatch_deadletter_total") == 1

    # The new producer is not wedged: dead letters reach every partition.
    produce(bootstrap, clicks, [(f"k{i}".encode(), b"{later %d" % i) for i in range(100)])
    wait_until(lambda: total(worker, "salewatch_deadletter_total") == 101)
    letters = consume(bootstrap, deadletter, expected=101)
    assert len(letters) == end_offsets_total(bootstrap, deadletter) == 101
    assert [r.value for r in letters if r.value.startswith(b"{q")] == [b"{" + b"q" * 4096]
    assert {r.partition for r in letters if r.value.startswith(b"{later")} == {0, 1, 2, 3}
    assert worker.get("/health")[0] == 200
    assert worker.process.poll() is None  # the worker itself never restarted
