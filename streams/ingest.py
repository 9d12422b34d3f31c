"""Stage 1: read the input topics, validate, dead-letter the bad, route the good.

Faust's per-message stream path tops out near 7,000 messages/s (DESIGN.md §2), too slow
for stores that send one event per message. Stage 1 is stateless, so it runs as a plain
aiokafka consumer (own consumer group) inside the worker: `getmany` batches, whole-batch
decoding, one produced message per stage-2 partition per batch. Offsets are committed
only after everything the batch produced is flushed (at-least-once; stage 2 dedups).

Event time: each input partition's stream time is the largest `ts` read from it so far.
An event whose window (end plus grace) is already behind its own input partition's stream
time is marked late here, where the order the store sent things is still known; reading one
topic ahead of another cannot make events late. After each batch, and every second, stage 1
tells every stage-2 partition how far each input partition has been read: the watermark
that closes windows is built from that (streams/windows.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import faust
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError

from streams.deadletter import DeadLetter, dead_letter
from streams.decoding import MessageDecoder
from streams.events import TopicKind
from streams.metrics import Metrics
from streams.routing import normalise, partition_for, routing_key
from streams.settings import Settings
from streams.topics import Topics
from streams.web import WorkerStatus

__all__ = ["IngestResult", "Ingestor", "register"]

log = logging.getLogger(__name__)

# Kafka's default message.max.bytes is 1 MB; stay well below it per routed message.
REPORT_BUSY_S = 0.2  # input progress reports while reading
REPORT_IDLE_S = 1.0  # and while nothing comes in
COMMIT_EVERY_S = 1.0  # commits need a producer flush: not after every batch
MAX_ROUTED_BYTES = 900 * 1024


class Record(Protocol):
    """What stage 1 reads of a consumed message (aiokafka's ConsumerRecord fits)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class IngestResult:
    routed: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    dead_letters: list[DeadLetter] = field(default_factory=list)
    max_ts: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> largest ts


class Ingestor:
    """Pure stage-1 logic: records in, routed events and dead letters out, metrics counted."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._decoders = {
            settings.input_topic(kind): MessageDecoder(kind, settings.max_future_ms)
            for kind in TopicKind
        }
        self._partitions = settings.partitions
        self._metrics = metrics
        self._window_ms = settings.window_ms
        self._grace_ms = settings.grace_ms

    @property
    def topic_names(self) -> list[str]:
        return list(self._decoders)

    def process(
        self, records: Iterable[Record], stream_time: Mapping[str, int] | None = None
    ) -> IngestResult:
        """Decode, count and route `records`, in order per input partition.

        `stream_time` is each input partition's largest `ts` read before these records.
        """
        result = IngestResult()
        messages: Counter[str] = Counter()
        events: Counter[tuple[str, str]] = Counter()
        rejected: Counter[tuple[str, str]] = Counter()
        read_max = dict(stream_time or {})
        for record in records:
            name = f"{record.topic}:{record.partition}"
            messages[record.topic] += 1
            decoded = self._decoders[record.topic].decode(record.value)
            for event in decoded.events:
                events[record.topic, event.type] += 1  # type: ignore[attr-defined]
                routed = normalise(event)
                seen_ms = read_max.get(name)
                if seen_ms is None or event.ts > seen_ms:
                    read_max[name] = result.max_ts[name] = event.ts
                elif self._is_late(event.ts, seen_ms):
                    routed["late"] = True  # internal flag: stage 2 counts it, adds it nowhere
                key = routing_key(routed)
                result.routed[partition_for(key, self._partitions)].append(routed)
            for rejection in decoded.rejections:
                rejected[record.topic, rejection.reason.value] += 1
                result.dead_letters.append(
                    dead_letter(
                        rejection, record.key, record.topic, record.partition, record.offset
                    )
                )
        self._count(messages, events, rejected)
        return result

    def _is_late(self, ts_ms: int, stream_ms: int) -> bool:
        window_end = ts_ms - ts_ms % self._window_ms + self._window_ms
        return window_end + self._grace_ms <= stream_ms

    def _count(
        self,
        messages: Counter[str],
        events: Counter[tuple[str, str]],
        rejected: Counter[tuple[str, str]],
    ) -> None:
        m = self._metrics
        now = time.time()
        m.processed.labels("ingest").inc(sum(events.values()))
        for topic, n in messages.items():
            m.messages.labels(topic).inc(n)
        for (topic, event_type), n in events.items():
            m.events.labels(topic, event_type).inc(n)
            m.last_event.labels(topic).set(now)
        for (topic, reason), n in rejected.items():
            m.deadletters.labels(topic, reason).inc(n)


def encode_chunks(events: list[dict[str, Any]]) -> Iterator[bytes]:
    """JSON arrays of the events, split until each fits a Kafka message."""
    payload = orjson.dumps(events)
    if len(payload) <= MAX_ROUTED_BYTES or len(events) == 1:
        yield payload
        return
    middle = len(events) // 2
    yield from encode_chunks(events[:middle])
    yield from encode_chunks(events[middle:])


class InputProgress:
    """Per input partition this worker reads: the largest event time read and the backlog.

    Reported to every stage-2 partition after each batch and every second: the watermark
    (streams/windows.py) is built from these reports. Also sets the consumer-lag gauge.
    """

    def __init__(self, consumer: AIOKafkaConsumer, metrics: Metrics) -> None:
        self._consumer = consumer
        self._metrics = metrics
        self.max_ts: dict[str, int] = {}

    def observe(self, max_ts: dict[str, int]) -> None:
        for name, ts_ms in max_ts.items():
            if ts_ms > self.max_ts.get(name, -1):
                self.max_ts[name] = ts_ms

    def stream_time(self, known_elsewhere: Callable[[str], int | None]) -> dict[str, int]:
        """Stream time of every assigned input; one just taken over from another worker
        starts where that worker's last report left it (as stage 2 heard it)."""
        for tp in self._consumer.assignment():
            name = f"{tp.topic}:{tp.partition}"
            if name not in self.max_ts:
                known = known_elsewhere(name)
                if known is not None:
                    self.max_ts[name] = known
        return self.max_ts

    async def report(self) -> dict[str, Any]:
        consumer = self._consumer
        marks: dict[str, list[Any]] = {}
        lag_by_topic: Counter[str] = Counter()
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = await consumer.position(tp)
            backlog = highwater is None or position < highwater
            if highwater is not None:
                lag_by_topic[tp.topic] += max(0, highwater - position)
            max_ts = self.max_ts.get(f"{tp.topic}:{tp.partition}")
            marks[f"{tp.topic}:{tp.partition}"] = [max_ts, backlog]
        for topic, lag in lag_by_topic.items():
            self._metrics.consumer_lag.labels(topic).set(lag)
        inputs = sum(len(consumer.partitions_for_topic(t) or ()) for t in consumer.subscription())
        return {"marks": marks, "inputs": inputs}


async def run_ingest(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    metrics: Metrics,
    input_stream_time: Callable[[str], int | None],
) -> None:
    ingestor = Ingestor(settings, metrics)
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
    progress = InputProgress(consumer, metrics)
    await topics.create_outputs()
    await consumer.start()
    log.info("ingest: reading %s", ", ".join(ingestor.topic_names))
    last_report = last_commit = 0.0
    uncommitted = False
    try:
        while True:
            consumed = await consumer.getmany(
                timeout_ms=settings.batch_within_ms, max_records=settings.batch_max_messages
            )
            if consumed:
                result = ingestor.process(
                    (r for records in consumed.values() for r in records),
                    progress.stream_time(input_stream_time),
                )
                progress.observe(result.max_ts)
                await _forward(topics, result)
            now = time.monotonic()
            if now - last_report >= (REPORT_BUSY_S if consumed else REPORT_IDLE_S):
                # after the batches' events: a report only speaks for what went before it
                with contextlib.suppress(IllegalStateError):  # rebalancing: next round
                    await _broadcast(topics, settings.partitions, await progress.report())
                last_report = now
            if consumed:
                uncommitted = True
            if uncommitted and now - last_commit >= COMMIT_EVERY_S:
                await _commit(app, consumer)
                uncommitted, last_commit = False, now
    finally:
        await consumer.stop()


async def _commit(app: faust.App, consumer: AIOKafkaConsumer) -> None:
    """Commit what was read, once everything it produced is acknowledged."""
    await app.producer.flush()
    try:
        await consumer.commit()
    except (CommitFailedError, IllegalStateError) as exc:
        # A rebalance took partitions away meanwhile: their new owner reads again from the
        # last commit and stage 2 drops the repeats as duplicates.
        log.info("ingest: commit after rebalance skipped (%s)", exc)


async def _forward(topics: Topics, result: IngestResult) -> None:
    for partition, events in result.routed.items():
        for payload in encode_chunks(events):
            await topics.events.send(value=payload, partition=partition)
    for letter in result.dead_letters:
        await topics.deadletter.send(key=letter.key, value=letter.value, headers=letter.headers)


async def _broadcast(topics: Topics, partitions: int, report: dict[str, Any]) -> None:
    payload = orjson.dumps(report)
    for partition in range(partitions):
        await topics.events.send(value=payload, partition=partition)


def register(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    metrics: Metrics,
    status: WorkerStatus,
    input_stream_time: Callable[[str], int | None],
) -> None:
    """`input_stream_time(input)`: the stream time stage 2 last heard for an input partition."""

    @app.task
    async def ingest() -> None:
        status.ingest_running = True
        try:
            await run_ingest(app, settings, topics, metrics, input_stream_time)
        finally:
            # /health turns 503 so an orchestrator restarts a worker that stopped reading.
            status.ingest_running = False
