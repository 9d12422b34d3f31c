"""Where the review's records come from: the windows and alerts topics, or JSONL exports
(one `salewatch.windows` or `salewatch.alerts` record per line), with a progress bar."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from rich.progress import Progress

from warroom.review.errors import ReviewError

__all__ = ["read_jsonl", "read_topic"]


def read_topic(
    bootstrap: str, topic: str, progress: Progress, required: bool = True
) -> Iterator[dict[str, Any]]:
    """Every record of the topic, from its beginning to its end as of now. A missing topic
    is an error when `required`, else nothing (no alert ever fired: no alerts topic)."""
    from kafka import KafkaConsumer, TopicPartition  # type: ignore[import-untyped]

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            if required:
                raise ReviewError(f"no topic {topic} at {bootstrap}")
            return
        consumer.assign(partitions)
        begins = consumer.beginning_offsets(partitions)
        ends = consumer.end_offsets(partitions)
        task = progress.add_task(f"reading {topic}", total=sum(ends[p] - begins[p] for p in ends))
        consumer.seek_to_beginning(*partitions)
        left = {tp for tp in partitions if ends[tp] > begins[tp]}
        while left:
            for tp, messages in consumer.poll(timeout_ms=1000).items():
                for message in messages:
                    if message.offset < ends[tp]:
                        yield orjson.loads(message.value)
                progress.advance(task, len(messages))
                if consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
        progress.update(task, completed=sum(ends[p] - begins[p] for p in ends))
    finally:
        consumer.close()


def read_jsonl(path: Path, progress: Progress) -> Iterator[dict[str, Any]]:
    try:
        size = path.stat().st_size
        with path.open("rb") as lines:
            task = progress.add_task(f"reading {path.name}", total=size)
            for number, line in enumerate(lines, 1):
                progress.advance(task, len(line))
                if line.strip():
                    try:
                        yield orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        raise ReviewError(f"{path}:{number}: not JSON: {exc}") from None
    except OSError as exc:
        raise ReviewError(f"cannot read {path}: {exc}") from None
