"""Produce a scenario to Kafka with kafka-python: batched JSON arrays, paced or flat out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.batching import Batch, batches
from simulator.errors import SimulatorError
from simulator.scenario import Scenario

__all__ = ["ProduceReport", "best_compression", "produce", "send"]


@dataclass(frozen=True)
class ProduceReport:
    events: int
    messages: int
    bytes: int  # uncompressed message values
    seconds: float  # from the first send to the last acknowledgement
    compression: str | None
    partitions: tuple[int, ...]  # per message, the partition the broker wrote it to

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def best_compression() -> str | None:
    """lz4 when its module is installed, else gzip (zlib is always there)."""
    from kafka import codec  # type: ignore[import-untyped]

    if codec.has_lz4():
        return "lz4"
    return "gzip" if codec.has_gzip() else None


def produce(
    scenario: Scenario,
    bootstrap: str,
    topic_prefix: str = "shop.",
    speed: float | None = None,
    *,
    max_events: int = 500,
    linger_ms: int | None = None,
    compression: str | None = "auto",
    progress: Callable[[int, int], None] | None = None,
    producer_options: dict[str, Any] | None = None,
) -> ProduceReport:
    """Send the scenario's batches (`batches()`) to `topic_prefix + topic`, acks=all.

    `speed` paces event time against the wall clock: 60 sends one event-minute per wall
    second; None sends as fast as the broker takes it. `progress(events_sent, total)` is
    called as batches go out.
    """
    return send(
        batches(scenario, max_events=max_events, linger_ms=linger_ms),
        bootstrap,
        topic_prefix,
        speed,
        compression=compression,
        progress=progress,
        producer_options=producer_options,
    )


def send(
    messages: list[Batch],
    bootstrap: str,
    topic_prefix: str = "shop.",
    speed: float | None = None,
    *,
    compression: str | None = "auto",
    progress: Callable[[int, int], None] | None = None,
    producer_options: dict[str, Any] | None = None,
) -> ProduceReport:
    """Send messages in order (paced by their `first_at_ms` with `speed`), as `produce()`."""
    from kafka import KafkaProducer  # type: ignore[import-untyped]
    from kafka.errors import KafkaError  # type: ignore[import-untyped]

    if speed is not None and speed <= 0:
        raise SimulatorError("speed must be positive (or None: as fast as possible)")
    codec = best_compression() if compression == "auto" else compression
    total = sum(len(batch.events) for batch in messages)
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap.split(","),
        "acks": "all",
        "linger_ms": 20,
        "batch_size": 1024 * 1024,
        "max_request_size": 4 * 1024 * 1024,
        "compression_type": codec,
        "client_id": "salewatch-simulator",
    }
    options.update(producer_options or {})
    try:
        producer = KafkaProducer(**options)
    except KafkaError as exc:
        raise SimulatorError(f"cannot connect to Kafka at {bootstrap}: {exc}") from exc
    failures: list[BaseException] = []
    futures = []
    sent = size = 0
    started = time.perf_counter()
    try:
        first_ms = messages[0].first_at_ms if messages else 0
        for index, batch in enumerate(messages):
            if speed is not None:
                _pace(started, (batch.first_at_ms - first_ms) / 1000.0 / speed)
            future = producer.send(topic_prefix + batch.topic, value=batch.value, key=batch.key)
            future.add_errback(failures.append)
            futures.append(future)
            sent += len(batch.events)
            size += len(batch.value)
            if failures:
                break
            if progress is not None and index % 20 == 0:
                progress(sent, total)
        producer.flush()
        partitions = tuple(future.get().partition for future in futures)
    except KafkaError as exc:
        raise SimulatorError(f"producing to {bootstrap} failed: {exc}") from exc
    finally:
        producer.close()
    seconds = time.perf_counter() - started
    if failures:
        raise SimulatorError(f"producing to {bootstrap} failed: {failures[0]!r}")
    if progress is not None:
        progress(sent, total)
    return ProduceReport(sent, len(messages), size, seconds, codec, partitions)


def _pace(started: float, due_s: float) -> None:
    delay = started + due_s - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
