"""Stage 1's own process: consume the inputs, produce routed events, report progress.

Started and watched by the worker (streams/ingest_supervisor.py), which it talks to over a
pipe: it sends what it counted (the metrics live in the worker) and asks, when it takes an
input partition over from another worker, how far that partition had been read. Offsets
are committed only after everything they produced is flushed (at-least-once; stage 2
dedups). A closed pipe means the worker is gone, so this process stops too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from streams.ingest import IngestCounts, Ingestor, IngestResult, encode_chunks
from streams.settings import Settings

__all__ = ["InputProgress", "WorkerLink", "main"]

log = logging.getLogger(__name__)

REPORT_BUSY_S = 0.2  # input progress reports while reading
REPORT_IDLE_S = 1.0  # and while nothing comes in
COMMIT_EVERY_S = 1.0  # commits need a producer flush: not after every batch
ANSWER_TIMEOUT_S = 10.0


class WorkerLink:
    """This process's end of the pipe to the worker. Messages are (kind, payload) tuples:
    ("counts", IngestCounts), ("lag", {topic: messages}), ("ask", [input partition names])
    answered by {name: largest ts heard}."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def send_counts(self, counts: IngestCounts) -> None:
        self._connection.send(("counts", counts))

    def send_lag(self, lag_by_topic: dict[str, int]) -> None:
        self._connection.send(("lag", lag_by_topic))

    def ask_stream_time(self, names: list[str]) -> dict[str, int]:
        """Blocks this process's loop briefly: only after a rebalance hands partitions over."""
        self._connection.send(("ask", names))
        if not self._connection.poll(ANSWER_TIMEOUT_S):
            raise TimeoutError("the worker did not answer a stream-time question")
        answer: dict[str, int] = self._connection.recv()
        return answer

    def closed_by_worker(self) -> bool:
        """True when the worker closed its end (it stopped or died)."""
        try:
            while self._connection.poll():
                self._connection.recv()  # nothing else is sent unasked
        except (EOFError, OSError):
            return True
        return False


class InputProgress:
    """Per input partition this process reads: the largest event time read, and whether it
    is idle (read to its end, nothing new for `idle_ms`).

    Reported to every stage-2 partition after batches and every second: the watermark
    (streams/windows.py) is built from these reports.
    """

    def __init__(self, consumer: AIOKafkaConsumer, idle_ms: int) -> None:
        self._consumer = consumer
        self._idle_s = idle_ms / 1000
        self._last_read: dict[str, float] = {}  # monotonic time records last came, by input
        self._asked: set[str] = set()  # inputs the worker was asked about, once each
        self.max_ts: dict[str, int] = {}

    def observe(self, result: IngestResult, inputs_read: Iterable[TopicPartition]) -> None:
        for name, ts_ms in result.max_ts.items():
            if ts_ms > self.max_ts.get(name, -1):
                self.max_ts[name] = ts_ms
        now = time.monotonic()
        for tp in inputs_read:
            self._last_read[f"{tp.topic}:{tp.partition}"] = now

    def stream_time(self, ask: Callable[[list[str]], dict[str, int]]) -> dict[str, int]:
        """Stream time of every assigned input; one just taken over from another worker
        starts where that worker's last report left it (as stage 2 heard it). Asked once per
        input: one the worker knows nothing of would otherwise cost a round trip per batch."""
        assigned = (f"{tp.topic}:{tp.partition}" for tp in self._consumer.assignment())
        unknown = [n for n in assigned if n not in self.max_ts and n not in self._asked]
        if unknown:
            self._asked.update(unknown)
            self.max_ts.update(ask(unknown))
        return self.max_ts

    async def report(self) -> tuple[dict[str, Any], dict[str, int]]:
        """The report for stage 2, and the consumer lag by topic."""
        consumer = self._consumer
        now = time.monotonic()
        marks: dict[str, list[Any]] = {}
        lag_by_topic: Counter[str] = Counter()
        for tp in consumer.assignment():
            name = f"{tp.topic}:{tp.partition}"
            highwater = consumer.highwater(tp)
            position = await consumer.position(tp)
            if highwater is not None:
                lag_by_topic[tp.topic] += max(0, highwater - position)
            read_to_end = highwater is not None and position >= highwater
            # a partition just assigned gets `idle_ms` to show it has something
            quiet_s = now - self._last_read.setdefault(name, now)
            marks[name] = [self.max_ts.get(name), read_to_end and quiet_s >= self._idle_s]
        inputs = sum(len(consumer.partitions_for_topic(t) or ()) for t in consumer.subscription())
        return {"marks": marks, "inputs": inputs}, dict(lag_by_topic)


class RoutedProducer:
    """Sends routed events, dead letters and progress reports of stage 1."""

    def __init__(self, settings: Settings) -> None:
        self._events_topic = settings.output_topic("events")
        self._deadletter_topic = settings.output_topic("deadletter")
        self._partitions = settings.partitions
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,  # a retried send is not written twice
            linger_ms=5,
            max_request_size=4 * 1024 * 1024,
        )

    async def forward(self, result: IngestResult) -> None:
        send = self.producer.send
        for partition, events in result.routed.items():
            for payload in encode_chunks(events):
                await send(self._events_topic, payload, partition=partition)
        for letter in result.dead_letters:
            await send(
                self._deadletter_topic,
                letter.value,
                key=letter.key,
                headers=letter.headers,
            )

    async def broadcast(self, report: dict[str, Any]) -> None:
        """After the events sent before it: a report only speaks for what went before it."""
        payload = orjson.dumps(report)
        for partition in range(self._partitions):
            await self.producer.send(self._events_topic, payload, partition=partition)


async def run(settings: Settings, link: WorkerLink) -> None:
    ingestor = Ingestor(settings)
    consumer = AIOKafkaConsumer(
        *ingestor.topic_names,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.app_id}-ingest",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Small per-partition fetches: aiokafka hands out one partition's buffer before the
        # next, so big ones would let one topic run far ahead of the others in a backlog.
        max_partition_fetch_bytes=256 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    output = RoutedProducer(settings)
    progress = InputProgress(consumer, settings.idle_ms)
    await output.producer.start()
    await consumer.start()
    log.info("ingest: reading %s", ", ".join(ingestor.topic_names))
    last_report = last_commit = 0.0
    uncommitted = False
    try:
        while not link.closed_by_worker():
            consumed = await consumer.getmany(
                timeout_ms=settings.batch_within_ms, max_records=settings.batch_max_messages
            )
            if consumed:
                result = ingestor.process(
                    (r for records in consumed.values() for r in records),
                    progress.stream_time(link.ask_stream_time),
                )
                progress.observe(result, consumed)
                await output.forward(result)
                link.send_counts(result.counts)
                uncommitted = True
            now = time.monotonic()
            if now - last_report >= (REPORT_BUSY_S if consumed else REPORT_IDLE_S):
                with contextlib.suppress(IllegalStateError):  # rebalancing: next round
                    report, lag_by_topic = await progress.report()
                    await output.broadcast(report)
                    link.send_lag(lag_by_topic)
                last_report = now
            if uncommitted and now - last_commit >= COMMIT_EVERY_S:
                await _commit(output.producer, consumer)
                uncommitted, last_commit = False, now
    finally:
        await consumer.stop()
        await output.producer.stop()


async def _commit(producer: AIOKafkaProducer, consumer: AIOKafkaConsumer) -> None:
    """Commit what was read, once everything it produced is acknowledged."""
    await producer.flush()
    try:
        await consumer.commit()
    except (CommitFailedError, IllegalStateError) as exc:
        # A rebalance took partitions away meanwhile: their new owner reads again from the
        # last commit and stage 2 drops the repeats as duplicates.
        log.info("ingest: commit after rebalance skipped (%s)", exc)


def main(settings: Settings, connection: Connection, log_level: int) -> None:
    """Entry point of the process (multiprocessing target)."""
    logging.basicConfig(level=log_level, format="[%(asctime)s] [%(process)d] %(message)s")
    link = WorkerLink(connection)

    async def until_stopped() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await run(settings, link)

    asyncio.run(until_stopped())
