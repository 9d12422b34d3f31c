"""The stage-2 agent's batch and clock tick interleaved on one event loop, without a broker:
tables are dicts, topics record what is sent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest
from faust.types import TP

from streams import eventtime
from streams.funnel import agent as funnel_agent
from streams.funnel.agent import FunnelStage
from streams.merge.partition import MergePartition
from streams.runtime.delivery import MAX_MESSAGE_BYTES
from streams.runtime.metrics import Metrics
from streams.runtime.settings import load_settings
from streams.runtime.topics import Topics

S = 1_000


class RecordingTopic:
    """Records sends in order; every send yields to the loop, like a real one can."""

    def __init__(self, name: str, sent: list[tuple[str, dict[str, Any]]]) -> None:
        self.name, self.sent = name, sent

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, value: bytes, partition: int) -> asyncio.Future[None]:
        await asyncio.sleep(0)
        self.sent.append((self.name, orjson.loads(value) if value[:1] == b"{" else {}))
        delivery = asyncio.get_running_loop().create_future()
        delivery.set_result(None)  # acknowledged
        return delivery


def message(partition: int, offset: int, value: Any) -> SimpleNamespace:
    return SimpleNamespace(
        message=SimpleNamespace(partition=partition, offset=offset), value=orjson.dumps(value)
    )


def click(ts: int, event_id: str) -> dict[str, Any]:
    return {"type": "click", "ts": ts, "event_id": event_id, "store_id": "s1",
            "channel": "app", "user_id": "u1", "sku": "A"}  # fmt: skip


@pytest.fixture
def stage(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FunnelStage, list[Any]]]:
    settings = load_settings(partitions=1, window_ms=60 * S, grace_ms=30 * S)
    app = faust.App("test-funnel-agent", broker="kafka://127.0.0.1:1", store="memory://")
    stage = FunnelStage(app, settings, Topics.declare(app, settings), Metrics())
    sent: list[tuple[str, dict[str, Any]]] = []
    stage.topics = SimpleNamespace(  # type: ignore[assignment]
        events=RecordingTopic("events", sent),
        partials=RecordingTopic("partials", sent),
        stock=RecordingTopic("stock", sent),
    )
    stage.state_table = {}
    monkeypatch.setattr(app.assignor, "assigned_actives", lambda: {TP("events", 0)})
    yield stage, sent


async def test_a_tick_during_a_batch_never_reports_a_window_closed_before_its_partial(
    stage: tuple[FunnelStage, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch closes the first minute and, while it sends a stock change, the tick (a
    minute of wall clock later, every input idle) closes the second. Stage 3 must still get
    the first minute's partial before any report that it is closed: otherwise it emits
    that window without it and the clicks are lost in silence (seen on a backfill)."""
    funnel, sent = stage
    clocks = iter([0, 60 * S])
    monkeypatch.setattr(funnel_agent, "_wall_ms", lambda: next(clocks))
    # the report a minute old still speaks for its inputs (stale reports are not this test's)
    monkeypatch.setattr(eventtime, "REPORT_STALE_MS", 120 * S)
    restock = {"type": "restock", "ts": 95 * S, "event_id": "r1", "store_id": "s1",
               "channel": "app", "sku": "A", "qty": 5}  # fmt: skip
    batch = [
        message(0, 0, [click(1 * S, "c1"), click(95 * S, "c2"), restock]),
        message(0, 1, {"marks": {"clicks:0": [100 * S, True]}, "inputs": 1}),
    ]
    await asyncio.gather(funnel.handle(batch), funnel.tick())  # type: ignore[arg-type]

    merge = MergePartition(partition=0, sources=1)
    final = {}
    for topic, partial in sent:
        if topic == "partials":
            merge.add(partial)
            final |= {key[2]: agg.counts["click"] for key, agg in merge.finalize()}
    assert final == {0: 1, 60 * S: 1}
    assert merge.missed == []


async def test_partials_too_large_for_one_message_reach_stage_3_in_parts(
    stage: tuple[FunnelStage, list[Any]],
) -> None:
    """A stage-2 partition that closes many windows at once (a backlog read, then every input
    idle) once sent them all in one message per stage-3 partition: over Kafka's 1 MB limit,
    which the broker refuses at delivery and nobody heard of (windows missing)."""
    funnel, sent = stage
    clicks = [{**click(1 * S, f"c{n}"), "store_id": f"s{n}", "user_id": f"u{n}"}
              for n in range(3000)]  # fmt: skip
    batch = [
        message(0, 0, clicks),
        message(0, 1, {"marks": {"clicks:0": [100 * S, True]}, "inputs": 1}),
    ]
    await funnel.handle(batch)  # type: ignore[arg-type]

    parts = [message for topic, message in sent if topic == "partials"]
    assert sum(len(orjson.dumps(part)) for part in parts) > MAX_MESSAGE_BYTES  # one: too big
    assert all(len(orjson.dumps(part)) <= MAX_MESSAGE_BYTES for part in parts)
    assert ["closed_before" in part for part in parts] == [False] * (len(parts) - 1) + [True]
    merge = MergePartition(partition=0, sources=1)
    final = []
    for part in parts:
        merge.add(part)
        final += merge.finalize()
    assert sorted(key[0] for key, _ in final) == sorted(f"s{n}" for n in range(3000))
