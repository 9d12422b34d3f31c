"""Stage 1's own process: what it keeps of input progress (no broker needed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka import TopicPartition

from streams.ingest_process import InputProgress


@dataclass
class FakeConsumer:
    assigned: set[TopicPartition] = field(default_factory=set)

    def assignment(self) -> set[TopicPartition]:
        return self.assigned


def test_the_worker_is_asked_about_each_input_once() -> None:
    consumer = FakeConsumer({TopicPartition("shop.clicks", 0), TopicPartition("shop.orders", 1)})
    progress = InputProgress(consumer, idle_ms=1_000)  # type: ignore[arg-type]
    questions: list[list[str]] = []

    def ask(names: list[str]) -> dict[str, int]:
        questions.append(sorted(names))
        return {"shop.clicks:0": 5_000}  # the worker knows nothing of shop.orders:1

    assert progress.stream_time(ask) == {"shop.clicks:0": 5_000}
    assert progress.stream_time(ask) == {"shop.clicks:0": 5_000}
    consumer.assigned.add(TopicPartition("shop.carts", 2))  # a rebalance hands one over
    progress.stream_time(ask)
    assert questions == [["shop.clicks:0", "shop.orders:1"], ["shop.carts:2"]]
