"""Stage 2 killed at any instant: the final windows and the stock changes equal those of a
run without the kill.

A kill keeps, of what the stage wrote, a prefix of each partition it wrote to (its state's
changelog partition, each output partition), at least up to what Kafka acknowledged; the
stage that takes over restores its state from what was kept and reads its input again
from the last commit. Hypothesis draws the input (events of a few windows, orders whose
events repeat and arrive out of order, exact duplicates, watermark reports), the batches,
when Kafka acknowledges, when the stage commits, when it is killed and what each partition
kept, for up to two kills in a run. No broker: tables are dicts that log their writes,
topics log their sends (the real-broker crash tests are tests/integration/test_crash_suite.py
and test_funnel_crash.py).
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from types import SimpleNamespace
from typing import Any
from unittest import mock

import faust
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.funnel import agent as funnel_agent
from streams.funnel.agent import FunnelStage
from streams.funnel.aggregates import STAGES, WindowAggregate
from streams.merge.partition import MergePartition
from streams.runtime.metrics import Metrics
from streams.runtime.settings import load_settings
from streams.runtime.topics import Topics

S = 1_000
WINDOW_MS = 10 * S
STATE = "changelog"
Record = tuple[Any, Any]  # (key, value) of a table write (value None: deleted) or a send


class Kafka:
    """Every partition the stage writes to, as the records it was sent in order; `acked`:
    how many of each Kafka has acknowledged (a kill keeps at least those)."""

    def __init__(self) -> None:
        self.log: dict[str, list[Record]] = defaultdict(list)
        self.acked: dict[str, int] = defaultdict(int)
        self.pending: list[tuple[str, int, asyncio.Future[None]]] = []

    def append(self, stream: str, record: Record) -> int:
        self.log[stream].append(record)
        return len(self.log[stream])

    def acknowledge(self) -> None:
        for stream, upto, delivery in self.pending:
            self.acked[stream] = max(self.acked[stream], upto)
            delivery.set_result(None)
        self.pending = []

    def commit(self) -> None:
        """Faust's commit: its flush waited for every write and send before it."""
        self.acknowledge()
        for stream, records in self.log.items():
            self.acked[stream] = len(records)

    def kill(self, keep: dict[str, float]) -> Kafka:
        """What survives: per partition, the acknowledged records and a share `keep` of the
        rest (0 to 1)."""
        kept = Kafka()
        for stream, records in self.log.items():
            acked = self.acked[stream]
            n = acked + round((len(records) - acked) * keep.get(stream, 0.0))
            kept.log[stream] = records[:n]
            kept.acked[stream] = n
        return kept


class LoggedTable(dict[str, bytes]):
    """A state table: its writes go to the changelog partition, in order."""

    def __init__(self, kafka: Kafka) -> None:
        super().__init__()
        for key, value in kafka.log[STATE]:  # restored from the changelog
            if value is None:
                super().pop(key, None)
            else:
                super().__setitem__(key, value)
        self.kafka = kafka

    def __setitem__(self, key: str, value: bytes) -> None:
        super().__setitem__(key, value)
        self.kafka.append(STATE, (key, value))

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.kafka.append(STATE, (key, None))


class LoggedTopic:
    def __init__(self, name: str, kafka: Kafka) -> None:
        self.name, self.kafka = name, kafka

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, value: bytes, partition: int) -> asyncio.Future[None]:
        await asyncio.sleep(0)
        stream = f"{self.name}:{partition}"
        upto = self.kafka.append(stream, (partition, orjson.loads(value)))
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.kafka.pending.append((stream, upto, delivery))
        return delivery


def new_stage(kafka: Kafka) -> FunnelStage:
    config = load_settings(partitions=1, window_ms=WINDOW_MS, grace_ms=5 * S,
                           dedup_horizon_ms=30 * S)  # fmt: skip
    app = faust.App("test-funnel-crash", broker="kafka://127.0.0.1:1", store="memory://")
    stage = FunnelStage(app, config, Topics.declare(app, config), Metrics())
    stage.topics = SimpleNamespace(  # type: ignore[assignment]
        events=LoggedTopic("events", kafka),
        partials=LoggedTopic("partials", kafka),
        stock=LoggedTopic("stock", kafka),
    )
    stage.state_table = LoggedTable(kafka)
    return stage


def sale(rng: random.Random, messages: int) -> list[Any]:
    """The routed-events partition: event lists and stage-1 reports, the last closing all."""
    out: list[Any] = []
    sent: list[dict[str, Any]] = []
    mark = 0
    for n in range(messages):
        if rng.random() < 0.25:
            mark += rng.randrange(0, WINDOW_MS)
            out.append({"marks": {"clicks:0": [mark, False]}, "inputs": 1})
            continue
        events = []
        for m in range(rng.randint(1, 6)):
            if sent and rng.random() < 0.15:
                events.append(rng.choice(sent))  # a copy: a duplicate
                continue
            event = _event(rng, f"e{n}-{m}", mark + rng.randrange(-8 * S, 2 * WINDOW_MS))
            events.append(event)
            sent.append(event)
        out.append(events)
    out.append({"marks": {"clicks:0": [mark + 100 * WINDOW_MS, False]}, "inputs": 1})
    return out


def _event(rng: random.Random, event_id: str, ts: int) -> dict[str, Any]:
    event_type = rng.choice(["impression", "click", "cart_add", "order_created", "order_paid",
                             "order_cancelled", "payment_failed", "refund_requested",
                             "return_received", "restock"])  # fmt: skip
    event = {"type": event_type, "ts": max(ts, 0), "event_id": event_id,
             "store_id": rng.choice(["s1", "s2"]), "channel": rng.choice(["app", "web"]),
             "user_id": f"u{rng.randrange(5)}", "source": "search",
             "category": "shoes"}  # fmt: skip
    order = {"order_id": f"o{rng.randrange(4)}", "lines": [{"sku": "A", "qty": 2}],
             "amount": "10.50", "currency": "CNY",
             "first_purchase": rng.random() < 0.5}  # fmt: skip
    if event_type.startswith("order") or event_type in ("payment_failed", "refund_requested"):
        event |= order
        event["store_id"] = "s1"  # one order, one store
    if event_type in ("return_received", "restock"):
        event |= {"sku": "A", "qty": 1, "order_id": "o1"}
    return event


def batches(rng: random.Random, offsets: range) -> list[list[int]]:
    out, start = [], offsets.start
    while start < offsets.stop:
        end = min(offsets.stop, start + rng.randint(1, 5))
        out.append(list(range(start, end)))
        start = end
    return out


def message(offset: int, value: Any) -> SimpleNamespace:
    return SimpleNamespace(
        message=SimpleNamespace(partition=0, offset=offset), value=orjson.dumps(value)
    )


async def run(messages: list[Any], rng: random.Random, kills: int) -> Kafka:
    """The stage over `messages`, killed `kills` times at random; returns what Kafka kept."""
    kafka, committed = Kafka(), 0
    for life in range(kills + 1):
        stage = new_stage(kafka)
        last_life = life == kills
        for batch in batches(rng, range(committed, len(messages))):
            await stage.handle([message(o, messages[o]) for o in batch])  # type: ignore[list-item]
            if last_life or rng.random() < 0.5:
                kafka.acknowledge()
            await asyncio.sleep(0)  # the acknowledgements' callbacks
            if last_life or rng.random() < 0.3:
                kafka.commit()
                committed = batch[-1] + 1
            if not last_life and rng.random() < 0.3:
                break  # killed
        if not last_life:
            kafka = kafka.kill({stream: rng.random() for stream in kafka.log})
    return kafka


def results(kafka: Kafka) -> tuple[dict[Any, Any], dict[str, Any]]:
    """The final windows stage 3 makes of the partials that reached it, and the stock
    changes the inventory agent keeps (one per id)."""
    merge = MergePartition(partition=0, sources=1)
    windows: dict[Any, Any] = {}
    for _, partials in kafka.log["partials:0"]:
        merge.add(partials)
        for key, aggregate in merge.finalize():
            assert key not in windows, f"window {key} emitted twice"
            windows[key] = summary(aggregate)
    assert merge.missed == []
    stock: dict[str, Any] = {}
    for _, changes in kafka.log["stock:0"]:
        for change in changes:
            assert stock.setdefault(change["id"], change) == change
    return windows, stock


def summary(aggregate: WindowAggregate) -> dict[str, Any]:
    return {
        **aggregate.to_dict(),
        "users": {stage: aggregate.unique_users(stage) for stage in STAGES},
        "payers": sorted(aggregate.payers),
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    messages=st.integers(5, 30),
    kills=st.integers(1, 2),
)
def test_a_kill_at_any_instant_loses_nothing_and_counts_nothing_twice(
    seed: int, messages: int, kills: int
) -> None:
    rng = random.Random(seed)
    events = sale(rng, messages)
    with mock.patch.object(funnel_agent, "_wall_ms", lambda: 0):  # reports only: no clock
        truth = results(asyncio.run(run(events, rng, kills=0)))
        crashed = results(asyncio.run(run(events, rng, kills=kills)))
    assert crashed[0] == truth[0]
    assert crashed[1] == truth[1]
