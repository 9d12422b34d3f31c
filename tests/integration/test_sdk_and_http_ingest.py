"""Issue: store SDK, `salewatch emit` and HTTP ingest against the real broker and workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sdk import StoreClient
from streams.contract.decoding import MAX_BATCH_EVENTS, MAX_MESSAGE_BYTES, MessageDecoder
from streams.contract.events import TopicKind
from tests.support.events import EVENT_TYPES, TOPIC_OF_TYPE, make_event
from tests.support.kafka import consume, delete_topics
from tests.support.stack import REPO, Stack
from tests.support.worker import Worker, WorkerFactory

pytestmark = pytest.mark.integration

TOKEN = "t" * 16


@pytest.fixture
def prefix(stack: Stack) -> Iterator[str]:
    """Fresh input topic names for one test; the topics are deleted after it."""
    run = f"t{uuid.uuid4().hex[:10]}."
    yield run + "shop."
    delete_topics(stack.kafka_bootstrap, [run])


def types_of(kind: str) -> list[str]:
    return [event_type for event_type in EVENT_TYPES if TOPIC_OF_TYPE[event_type] == kind]


def post(worker: Worker, path: str, body: bytes, token: str | None = TOKEN) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(worker.url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def samples(worker: Worker, metric: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of one metric family on the worker's /metrics, by label set."""
    found: dict[frozenset[tuple[str, str]], float] = {}
    for family in text_string_to_metric_families(worker.metrics()):
        for sample in family.samples:
            if sample.name == metric:
                found[frozenset(sample.labels.items())] = sample.value
    return found


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert check()


# --- the SDK --------------------------------------------------------------------------------
def test_sdk_round_trips_every_event_type_keyed_and_batched_by_store(
    stack: Stack, prefix: str
) -> None:
    sent: dict[str, dict[str, Any]] = {}
    with StoreClient(stack.kafka_bootstrap, prefix, linger_ms=60_000) as client:
        for store in ("store-a", "store-b"):
            for event_type in EVENT_TYPES:
                event = client.emit(make_event(event_type, store_id=store))
                sent[event.event_id] = event.model_dump(mode="json", exclude_none=True)
    assert client.stats.events_sent == 2 * len(EVENT_TYPES)
    assert client.stats.events_failed == 0

    received: dict[str, dict[str, Any]] = {}
    for kind in TopicKind:
        records = consume(stack.kafka_bootstrap, prefix + kind.value, expected=2)
        assert sorted(record.key for record in records) == [b"store-a", b"store-b"]
        decoded = MessageDecoder(kind)
        for record in records:
            batch = orjson.loads(record.value)
            assert {event["store_id"].encode() for event in batch} == {record.key}
            assert sorted(event["type"] for event in batch) == sorted(types_of(kind.value))
            assert decoded.decode(record.value).rejections == []
            received.update((event["event_id"], event) for event in batch)
    assert received == sent


def test_sdk_splits_large_volumes_into_contract_sized_messages(stack: Stack, prefix: str) -> None:
    count = 12_000
    with StoreClient(stack.kafka_bootstrap, prefix, linger_ms=60_000) as client:
        for i in range(count):
            client.click(store_id="flagship", channel="app", user_id=f"u{i}", sku=f"sku-{i}")
    messages = client.stats.messages_sent
    records = consume(stack.kafka_bootstrap, prefix + "clicks", expected=messages)
    assert len(records) == messages >= 2
    assert sum(len(orjson.loads(r.value)) for r in records) == count
    for record in records:
        assert len(record.value) <= MAX_MESSAGE_BYTES
        assert len(orjson.loads(record.value)) <= MAX_BATCH_EVENTS


def test_salewatch_emit_sends_a_jsonl_file_and_reports_rejected_lines(
    stack: Stack, tmp_path: Path, prefix: str
) -> None:
    good = [make_event("click"), make_event("order_paid"), make_event("restock")]
    lines = [orjson.dumps(good[0]), orjson.dumps(make_event("click", qty="x", channel="Bad"))]
    lines += [b"", orjson.dumps(good[1]), b"{oops", orjson.dumps(good[2])]
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"\n".join(lines) + b"\n")

    result = subprocess.run(
        [sys.executable, "-m", "streams.runtime.cli", "emit", str(events_file)],
        cwd=REPO,
        env={
            **os.environ,
            "SALEWATCH_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "SALEWATCH_TOPIC_PREFIX": prefix,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "read 5 events, sent 3 in 3 messages" in result.stderr
    assert "rejected 2" in result.stderr
    assert "line 2: invalid_field: channel:" in result.stderr
    assert "line 5: invalid_json:" in result.stderr

    for event in good:
        kind = TOPIC_OF_TYPE[event["type"]]
        [record] = consume(stack.kafka_bootstrap, prefix + kind, expected=1)
        assert orjson.loads(record.value)[0]["event_id"] == event["event_id"]


# --- HTTP ingest ----------------------------------------------------------------------------
def test_http_ingest_accepts_every_type_and_dead_letters_the_rest(
    workers: WorkerFactory,
) -> None:
    worker = workers.start(ingest_token=TOKEN, ingest_max_bytes=64 * 1024)
    bootstrap = workers.stack.kafka_bootstrap

    for kind in TopicKind:
        batch = [make_event(event_type) for event_type in types_of(kind.value)]
        status, answer = post(worker, f"/ingest/{kind.value}", orjson.dumps(batch))
        assert (status, answer) == (202, {"accepted": len(batch), "rejected": 0, "errors": []})
    status, answer = post(worker, "/ingest/clicks", orjson.dumps(make_event("click")))
    assert (status, answer["accepted"]) == (202, 1)

    clicks = workers.input_topic("clicks")
    mixed = [
        make_event("click", store_id="store-9"),
        make_event("click", store_id="store-9", channel="NOT OK"),
        make_event("impression", store_id="store-9"),
        make_event("order_paid", store_id="store-9"),
    ]
    status, answer = post(worker, "/ingest/clicks", orjson.dumps(mixed))
    assert status == 202
    assert (answer["accepted"], answer["rejected"]) == (2, 2)
    assert [(e["index"], e["reason"]) for e in answer["errors"]] == [
        (1, "invalid_field"),
        (3, "unknown_type"),
    ]
    assert "channel" in answer["errors"][0]["detail"]

    expected = {(workers.input_topic(TOPIC_OF_TYPE[t]), t): 1.0 for t in EVENT_TYPES}
    expected[clicks, "click"] = 3.0
    expected[clicks, "impression"] = 2.0

    def counted() -> dict[tuple[str, str], float]:
        found = samples(worker, "salewatch_events_total")
        return {(dict(k)["topic"], dict(k)["type"]): v for k, v in found.items()}

    wait_until(lambda: counted() == expected)

    # the accepted part of the mixed batch: one message keyed by its one store
    records = consume(bootstrap, clicks, expected=3)
    [store_9] = [r for r in records if r.key == b"store-9"]
    assert [e["event_id"] for e in orjson.loads(store_9.value)] == [
        mixed[0]["event_id"],
        mixed[2]["event_id"],
    ]

    letters = consume(bootstrap, workers.output_topic("deadletter"), expected=2)
    assert len(letters) == 2
    by_index = {dict(r.headers)["salewatch.batch.index"]: r for r in letters}
    for index, reason in ((b"1", b"invalid_field"), (b"3", b"unknown_type")):
        headers = dict(by_index[index].headers)
        assert headers["salewatch.error.reason"] == reason
        assert headers["salewatch.original.topic"] == clicks.encode()
        assert headers["salewatch.original.partition"] == b"-1"
        assert headers["salewatch.original.offset"] == b"-1"
        assert orjson.loads(by_index[index].value) == mixed[int(index)]
    dead = samples(worker, "salewatch_deadletter_total")
    assert dead[frozenset({("topic", clicks), ("reason", "invalid_field")})] == 1.0
    assert dead[frozenset({("topic", clicks), ("reason", "unknown_type")})] == 1.0


def test_http_ingest_refuses_bad_requests(workers: WorkerFactory) -> None:
    worker = workers.start(ingest_token=TOKEN, ingest_max_bytes=64 * 1024)
    one_click = orjson.dumps(make_event("click"))

    assert post(worker, "/ingest/clicks", one_click, token=None)[0] == 401
    assert post(worker, "/ingest/clicks", one_click, token="w" * 16)[0] == 401
    assert post(worker, "/ingest/nowhere", one_click)[0] == 404

    oversized = orjson.dumps([make_event("click") for _ in range(600)])
    assert len(oversized) > 64 * 1024
    status, answer = post(worker, "/ingest/clicks", oversized)
    assert status == 413, answer

    status, answer = post(worker, "/ingest/clicks", b"{not json")
    assert status == 400
    assert answer["accepted"] == 0
    assert answer["errors"][0]["index"] is None
    assert answer["errors"][0]["reason"] == "invalid_json"

    wait_until(lambda: bool(samples(worker, "salewatch_deadletter_total")))
    assert list(samples(worker, "salewatch_deadletter_total").values()) == [1.0]
    assert samples(worker, "salewatch_events_total") == {}
    assert worker.get("/health")[0] == 200


def test_http_ingest_is_disabled_without_a_token(workers: WorkerFactory) -> None:
    worker = workers.start()
    status, answer = post(worker, "/ingest/clicks", orjson.dumps(make_event("click")))
    assert status == 404
    assert "SALEWATCH_INGEST_TOKEN" in answer["error"]
