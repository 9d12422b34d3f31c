"""Stage 1 logic: read input records, validate, dead-letter the bad, route the good.

Faust's per-message stream path tops out near 7,000 messages/s (docs/design.md), too slow
for stores that send one event per message. Stage 1 is stateless, so it runs outside Faust:
a plain aiokafka consumer (own consumer group) in a process of its own next to the worker
(streams/ingest/process.py), so validation has a core to itself. This module is its pure
part: whole-batch decoding, routing by content, one message per stage-2 partition per batch.

Event time: each input partition's stream time is the largest `ts` read from it so far.
An event whose window (end plus grace) is already behind its own input partition's stream
time is marked late here, where the order the store sent things is still known; reading one
topic ahead of another cannot make events late. Stage 1 also tells every stage-2 partition
how far each input partition has been read: the watermark that closes windows is built
from those reports (streams/eventtime.py).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.contract.deadletter import DeadLetter, dead_letter
from streams.contract.decoding import MessageDecoder
from streams.contract.events import TopicKind
from streams.contract.routing import encode_json, fields_of, partition_for, routing_key
from streams.eventtime import is_late
from streams.runtime.delivery import fitting_chunks
from streams.runtime.metrics import Metrics
from streams.runtime.settings import Settings

__all__ = ["IngestCounts", "IngestResult", "Ingestor", "encode_chunks"]


class Record(Protocol):
    """What stage 1 reads of a consumed message (aiokafka's ConsumerRecord fits)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class IngestCounts:
    """What stage 1 counted; applied to the metrics by the worker process that owns them."""

    messages: Counter[str] = field(default_factory=Counter)  # by topic
    events: Counter[tuple[str, str]] = field(default_factory=Counter)  # by topic, type
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)  # by topic, reason
    newest_ts: dict[str, int] = field(default_factory=dict)  # by topic: largest ts read (ms)

    def apply(self, metrics: Metrics) -> None:
        now = time.time()
        metrics.processed.labels("ingest").inc(sum(self.events.values()))
        for topic, n in self.messages.items():
            metrics.messages.labels(topic).inc(n)
        for (topic, event_type), n in self.events.items():
            metrics.events.labels(topic, event_type).inc(n)
            metrics.last_event.labels(topic).set(now)
        for (topic, reason), n in self.rejected.items():
            metrics.deadletters.labels(topic, reason).inc(n)
        for topic, ts_ms in self.newest_ts.items():
            metrics.newest_event_time.labels(topic).set(ts_ms / 1000)


@dataclass
class IngestResult:
    routed: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    dead_letters: list[DeadLetter] = field(default_factory=list)
    max_ts: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> largest ts
    counts: IngestCounts = field(default_factory=IngestCounts)


class Ingestor:
    """Pure stage-1 logic: records in; routed events, dead letters and counts out."""

    def __init__(self, settings: Settings) -> None:
        self._decoders = {
            settings.input_topic(kind): MessageDecoder(kind, settings.max_future_ms)
            for kind in TopicKind
        }
        self._partitions = settings.partitions
        self._window_ms = settings.window_ms
        self._grace_ms = settings.grace_ms
        self._newest_ts: dict[str, int] = {}  # by topic, over every batch of this process

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
        counts = result.counts
        messages, events, rejected = counts.messages, counts.events, counts.rejected
        read_max = dict(stream_time or {})
        for record in records:
            name = f"{record.topic}:{record.partition}"
            messages[record.topic] += 1
            decoded = self._decoders[record.topic].decode(record.value)
            for event in decoded.events:
                events[record.topic, event.type] += 1  # type: ignore[attr-defined]
                routed = fields_of(event)
                seen_ms = read_max.get(name)
                if seen_ms is None or event.ts > seen_ms:
                    read_max[name] = result.max_ts[name] = event.ts
                elif is_late(event.ts, seen_ms, self._window_ms, self._grace_ms):
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
        for name, ts_ms in result.max_ts.items():
            topic = name.rpartition(":")[0]
            if ts_ms > self._newest_ts.get(topic, ts_ms - 1):
                self._newest_ts[topic] = counts.newest_ts[topic] = ts_ms
        return result


def encode_chunks(events: list[dict[str, Any]]) -> Iterator[bytes]:
    """JSON arrays of the events, split until each fits a Kafka message."""
    for _, payload in fitting_chunks(events, encode_json):
        yield payload
