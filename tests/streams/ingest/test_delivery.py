"""Stage 1 checks every send before it commits or reports progress; the worker counts
failures and turns /health red until the next commit; a worker gone stops stage 1 quietly;
a commit carries each partition's stream time (no broker needed)."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import Counter
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError, KafkaConnectionError, MessageSizeTooLargeError

from streams.ingest import process as ingest_process
from streams.ingest.process import (
    RETRY_BACKOFF_S,
    DeliveryFailed,
    IngestLoop,
    RoutedProducer,
    StepWatch,
    WorkerLink,
)
from streams.ingest.supervisor import IngestServer
from streams.runtime.metrics import Metrics
from streams.runtime.settings import load_settings
from streams.runtime.web import Restore, WorkerStatus


class FakeProducer:
    """Sends resolve as the test says: `outcomes[topic]` is an exception, None (acknowledged)
    or "never" (no answer)."""

    def __init__(self, outcomes: dict[str, BaseException | str | None]) -> None:
        self.outcomes = outcomes

    async def send(self, topic: str, value: bytes, **options: Any) -> asyncio.Future[Any]:
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        outcome = self.outcomes[topic]
        if isinstance(outcome, BaseException):
            delivery.set_exception(outcome)
        elif outcome is None:
            delivery.set_result("metadata")
        return delivery


def routed_producer(outcomes: dict[str, BaseException | str | None]) -> RoutedProducer:
    output = RoutedProducer(load_settings(output_prefix="sw.", partitions=2))
    output._producer = FakeProducer(outcomes)  # type: ignore[assignment]
    return output


async def test_every_send_is_checked_and_failures_are_counted_by_topic() -> None:
    output = routed_producer({"sw.events": None, "sw.deadletter": MessageSizeTooLargeError()})
    await output._send("sw.events", b"[]", partition=0)
    await output.acknowledged()  # all acknowledged: returns
    await output._send("sw.events", b"[]", partition=1)
    await output._send("sw.deadletter", b"x")
    await output._send("sw.deadletter", b"y")
    with pytest.raises(DeliveryFailed, match="MessageSizeTooLargeError") as failed:
        await output.acknowledged()
    assert failed.value.failed == Counter({"sw.deadletter": 2})
    await output.acknowledged()  # a failure is reported once


async def test_a_send_never_answered_fails_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingest_process, "DELIVERY_TIMEOUT_S", 0.05)
    output = routed_producer({"sw.events": "never"})
    await output._send("sw.events", b"x")
    with pytest.raises(DeliveryFailed, match="not acknowledged") as failed:
        await output.acknowledged()
    assert failed.value.failed == Counter({"sw.events": 1})


class HeldProducer:
    """Records each send; its delivery stays open until the test settles it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.deliveries: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, value: bytes, **options: Any) -> asyncio.Future[Any]:
        self.sent.append((topic, value))
        self.deliveries.append(asyncio.get_running_loop().create_future())
        return self.deliveries[-1]


REPORT = {"marks": {"sw.clicks:0": [1_000, False]}, "inputs": 1}


async def test_a_report_goes_out_only_once_every_send_before_it_is_acknowledged() -> None:
    output = routed_producer({})
    producer = output._producer = HeldProducer()  # type: ignore[assignment]
    await output._send("sw.events", b"[events]", partition=1)
    output.broadcast(REPORT)
    await asyncio.sleep(0.05)
    assert producer.sent == [("sw.events", b"[events]")]  # the report waits
    await output._send("sw.events", b"[more events]", partition=0)
    output.broadcast({"marks": {}, "inputs": 1})  # queued behind the waiting one...
    newer = {"marks": {"sw.clicks:0": [2_000, False]}, "inputs": 1}
    output.broadcast(newer)  # ...and replaced: it waits for both sends
    producer.deliveries[0].set_result("metadata")
    await asyncio.sleep(0.05)
    assert [value for _, value in producer.sent[2:]] == [orjson.dumps(REPORT)] * 2
    producer.deliveries[1].set_result("metadata")
    await asyncio.sleep(0.05)
    assert [value for _, value in producer.sent[4:]] == [orjson.dumps(newer)] * 2


async def test_no_report_speaks_for_a_send_kafka_refused() -> None:
    output = routed_producer({})
    producer = output._producer = HeldProducer()  # type: ignore[assignment]
    await output._send("sw.events", b"[events]", partition=1)
    producer.deliveries[0].set_exception(MessageSizeTooLargeError())
    output.broadcast(REPORT)
    await asyncio.sleep(0.05)
    assert producer.sent == [("sw.events", b"[events]")]
    with pytest.raises(DeliveryFailed):  # the loop hears of it at its next commit
        await output.acknowledged()


RESTORED = Restore(restoring=False, remaining_records=0, partitions=0)


def test_the_worker_counts_failed_sends_and_is_unhealthy_until_the_next_commit() -> None:
    metrics, status = Metrics(), WorkerStatus(ingest_running=True)
    server = IngestServer(metrics, status)
    server._dispatch("failed", {"sw.deadletter": 3})
    assert not status.checks(crashed_agents=[], restore=RESTORED)["ingest_delivering"]
    value = metrics.registry.get_sample_value(
        "salewatch_produce_errors_total", {"topic": "sw.deadletter"}
    )
    assert value == 3
    server._dispatch("committed", None)
    # the commit was its report too
    assert all(status.checks(crashed_agents=[], restore=RESTORED).values())


async def test_after_the_last_pause_stage_1_gives_up_loudly() -> None:
    failed: list[Counter[str]] = []
    link = SimpleNamespace(send_failed=failed.append)
    loop = IngestLoop(load_settings(), link)  # type: ignore[arg-type]
    loop._failures = len(RETRY_BACKOFF_S)
    failure = DeliveryFailed(Counter({"salewatch.events": 4}), MessageSizeTooLargeError())
    with pytest.raises(DeliveryFailed):
        await loop._recover(failure)
    assert failed == [{"salewatch.events": 4}]  # counted before giving up


async def test_a_broker_still_away_when_the_producer_is_replaced_is_one_more_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not the end of the process: its successor would wait out its group's session timeout
    before it reads again (15 s in the crash suite's broker restart)."""
    monkeypatch.setattr(ingest_process, "RETRY_BACKOFF_S", (0.0, 0.0, 0.0))
    starts: list[str] = []

    async def restart() -> None:
        starts.append("start")
        if len(starts) < 3:
            raise KafkaConnectionError("Unable to bootstrap")

    link = SimpleNamespace(send_failed=lambda failed: None)
    loop = IngestLoop(load_settings(), link)  # type: ignore[arg-type]
    loop._output = SimpleNamespace(restart=restart)  # type: ignore[assignment]
    failure = DeliveryFailed(Counter({"salewatch.events": 8}), KafkaConnectionError("gone"))
    await loop._recover(failure)
    assert (len(starts), loop._failures) == (3, 3)

    loop._failures = 0
    starts.clear()
    monkeypatch.setattr(ingest_process, "RETRY_BACKOFF_S", (0.0,))
    with pytest.raises(KafkaConnectionError):  # away for longer than all the pauses
        await loop._recover(failure)


def test_stage_1_stops_quietly_once_the_worker_closed_the_pipe() -> None:
    ours, theirs = multiprocessing.Pipe()
    link = WorkerLink(theirs)
    assert not link.closed_by_worker()
    ours.close()  # what the worker does when it stops
    link.send_lag({"sw.clicks": 3})  # no BrokenPipeError: the loop ends at its next check
    assert link.closed_by_worker()


class PartitionsMovingConsumer:
    """Two input partitions; reading a position may take a rebalance (`rebalance_at`)."""

    def __init__(self, loop: IngestLoop, rebalance_at: TopicPartition | None) -> None:
        self.assigned = {TopicPartition("sw.clicks", 0), TopicPartition("sw.clicks", 1)}
        self.loop, self.rebalance_at = loop, rebalance_at

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def pause(self, *partitions: TopicPartition) -> None:
        pass

    async def position(self, tp: TopicPartition) -> int:
        if tp == self.rebalance_at:  # partitions move back to their last commit meanwhile
            await self.loop._resuming.on_partitions_assigned(self.assigned)
            return 0
        return 7


async def test_a_commit_carries_each_stream_time_unless_prepared_across_a_rebalance() -> None:
    """Positions moved back by a rebalance with the stream times left as they were would
    commit a stream time ahead of its offset: read again, the partition's first events
    would be judged late (a fresh-clone `make test`: one store's first window short)."""
    loop = IngestLoop(load_settings(output_prefix="sw."), SimpleNamespace())  # type: ignore[arg-type]
    loop._progress.observe({"sw.clicks:0": 90_000}, [])
    steady = PartitionsMovingConsumer(loop, rebalance_at=None)
    loop._consumer = loop._resuming._consumer = steady  # type: ignore[assignment]
    assert await loop._offsets_with_stream_time() == {
        TopicPartition("sw.clicks", 0): (7, "90000"),
        TopicPartition("sw.clicks", 1): (7, ""),  # nothing read: no stream time
    }
    moving = PartitionsMovingConsumer(loop, rebalance_at=TopicPartition("sw.clicks", 0))
    loop._consumer = loop._resuming._consumer = moving  # type: ignore[assignment]
    with pytest.raises(IllegalStateError):
        await loop._offsets_with_stream_time()


async def test_a_step_that_never_ends_is_noticed_with_where_it_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stuck: list[bool] = []
    watch = StepWatch(0.2, lambda: stuck.append(True))

    async def a_step_that_never_ends() -> None:
        await asyncio.Event().wait()

    step = asyncio.create_task(a_step_that_never_ends())
    watching = asyncio.create_task(watch.watch_forever())
    for _ in range(5):  # steps that end in time keep it quiet
        await asyncio.sleep(0.1)
        watch.began()
    assert not stuck
    await asyncio.wait_for(watching, 1.0)
    step.cancel()
    assert stuck == [True]
    assert "a_step_that_never_ends" in caplog.text
