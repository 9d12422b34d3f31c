"""Issue: valid and invalid events, single and batched, through a real broker and worker."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.support.events import make_event
from tests.support.kafka import consume, produce
from tests.support.worker import Worker, WorkerFactory

pytestmark = pytest.mark.integration


def metric_value(worker: Worker, line_prefix: str) -> float:
    for line in worker.metrics().splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_for_metric(worker: Worker, line_prefix: str, expected: float, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric_value(worker, line_prefix) >= expected:
            break
        time.sleep(0.3)
    assert metric_value(worker, line_prefix) == expected, line_prefix


def test_valid_counted_invalid_dead_lettered_worker_stays_healthy(
    workers: WorkerFactory,
) -> None:
    worker = workers.start()
    bootstrap = workers.stack.kafka_bootstrap
    clicks, orders = workers.input_topic("clicks"), workers.input_topic("orders")

    bad_channel = make_event("click", channel="NOT OK")
    produce(bootstrap, clicks, [orjson.dumps(make_event("click"))], key=b"store-1")
    produce(
        bootstrap,
        clicks,
        [orjson.dumps([make_event("impression"), make_event("click"), bad_channel])],
        key=None,
    )
    produce(
        bootstrap,
        orders,
        [
            orjson.dumps(make_event("order_paid")),
            b"{definitely not json",
            orjson.dumps(make_event("refund_requested")),  # a type of another topic
            orjson.dumps(make_event("order_created", ts=time.time_ns() // 10**6 + 3_600_000)),
        ],
        key=b"random-key",
    )

    wait_for_metric(worker, f'salewatch_events_total{{topic="{clicks}",type="click"}}', 2)
    wait_for_metric(worker, f'salewatch_events_total{{topic="{clicks}",type="impression"}}', 1)
    wait_for_metric(worker, f'salewatch_events_total{{topic="{orders}",type="order_paid"}}', 1)

    letters = consume(bootstrap, workers.output_topic("deadletter"), expected=4)
    by_reason = {dict(r.headers)["salewatch.error.reason"].decode(): r for r in letters}
    assert set(by_reason) == {"invalid_field", "invalid_json", "unknown_type", "future_timestamp"}
    assert len(letters) == 4

    invalid_field = by_reason["invalid_field"]
    headers = dict(invalid_field.headers)
    assert orjson.loads(invalid_field.value) == bad_channel
    assert headers["salewatch.original.topic"].decode() == clicks
    assert headers["salewatch.batch.index"] == b"2"
    assert int(headers["salewatch.original.offset"]) >= 0
    assert int(headers["salewatch.original.partition"]) >= 0

    assert by_reason["invalid_json"].value == b"{definitely not json"
    assert by_reason["invalid_json"].key == b"random-key"
    wait_for_metric(
        worker, f'salewatch_deadletter_total{{reason="invalid_json",topic="{orders}"}}', 1
    )
    status, body = worker.get("/health")
    assert status == 200, body
    assert worker.process.poll() is None


@pytest.mark.parametrize("codec", ["gzip", "lz4"])
def test_compressed_input_is_read(workers: WorkerFactory, codec: str) -> None:
    worker = workers.start()
    batch = [make_event("click", event_id=f"{codec}-{i}") for i in range(50)]
    produce(workers.stack.kafka_bootstrap, workers.input_topic("clicks"), [orjson.dumps(batch)],
            compression=codec)  # fmt: skip
    clicks = workers.input_topic("clicks")
    wait_for_metric(worker, f'salewatch_events_total{{topic="{clicks}",type="click"}}', 50)
    assert worker.get("/health")[0] == 200
