"""Stage 1: read the input topics, validate, dead-letter the bad, route the good.

Faust's per-message stream path tops out near 7,000 messages/s (DESIGN.md §2), too slow
for stores that send one event per message. Stage 1 is stateless, so it runs as a plain
aiokafka consumer (own consumer group) inside the worker: `getmany` batches, whole-batch
decoding, one produced message per stage-2 partition per batch. Offsets are committed
only after everything the batch produced is flushed (at-least-once; stage 2 dedups).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

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


class Ingestor:
    """Pure stage-1 logic: records in, routed events and dead letters out, metrics counted."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._decoders = {
            settings.input_topic(kind): MessageDecoder(kind, settings.max_future_ms)
            for kind in TopicKind
        }
        self._partitions = settings.partitions
        self._metrics = metrics

    @property
    def topic_names(self) -> list[str]:
        return list(self._decoders)

    def process(self, records: Iterable[Record]) -> IngestResult:
        result = IngestResult()
        messages: Counter[str] = Counter()
        events: Counter[tuple[str, str]] = Counter()
        rejected: Counter[tuple[str, str]] = Counter()
        for record in records:
            messages[record.topic] += 1
            decoded = self._decoders[record.topic].decode(record.value)
            for event in decoded.events:
                events[record.topic, event.type] += 1  # type: ignore[attr-defined]
                key = routing_key(event)
                result.routed[partition_for(key, self._partitions)].append(normalise(event))
            for rejection in decoded.rejections:
                rejected[record.topic, rejection.reason.value] += 1
                result.dead_letters.append(
                    dead_letter(
                        rejection, record.key, record.topic, record.partition, record.offset
                    )
                )
        self._count(messages, events, rejected)
        return result

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


class LagTracker:
    """Consumer lag per input topic, summed over this worker's partitions."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._lag: dict[TopicPartition, int] = {}

    def update(self, consumer: AIOKafkaConsumer, consumed: dict[TopicPartition, list[Any]]) -> None:
        assigned = consumer.assignment()
        for tp in list(self._lag):
            if tp not in assigned:
                del self._lag[tp]
        for tp, records in consumed.items():
            highwater = consumer.highwater(tp)
            if highwater is not None and records:
                self._lag[tp] = max(0, highwater - records[-1].offset - 1)
        per_topic: Counter[str] = Counter()
        for tp, lag in self._lag.items():
            per_topic[tp.topic] += lag
        for topic, lag in per_topic.items():
            self._metrics.consumer_lag.labels(topic).set(lag)


async def run_ingest(app: faust.App, settings: Settings, topics: Topics, metrics: Metrics) -> None:
    ingestor = Ingestor(settings, metrics)
    lag = LagTracker(metrics)
    consumer = AIOKafkaConsumer(
        *ingestor.topic_names,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.app_id}-ingest",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await topics.create_outputs()
    await consumer.start()
    log.info("ingest: reading %s", ", ".join(ingestor.topic_names))
    try:
        while True:
            consumed = await consumer.getmany(
                timeout_ms=settings.batch_within_ms, max_records=settings.batch_max_messages
            )
            if not consumed:
                continue
            result = ingestor.process(r for records in consumed.values() for r in records)
            await _forward(app, topics, result)
            await consumer.commit()
            lag.update(consumer, consumed)
    finally:
        await consumer.stop()


async def _forward(app: faust.App, topics: Topics, result: IngestResult) -> None:
    for partition, events in result.routed.items():
        for payload in encode_chunks(events):
            await topics.events.send(value=payload, partition=partition)
    for letter in result.dead_letters:
        await topics.deadletter.send(key=letter.key, value=letter.value, headers=letter.headers)
    await app.producer.flush()


def register(
    app: faust.App, settings: Settings, topics: Topics, metrics: Metrics, status: WorkerStatus
) -> None:
    @app.task
    async def ingest() -> None:
        status.ingest_running = True
        try:
            await run_ingest(app, settings, topics, metrics)
        finally:
            # /health turns 503 so an orchestrator restarts a worker that stopped reading.
            status.ingest_running = False
