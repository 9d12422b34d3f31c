"""The stage-3 agent restoring a partition after a crash, without a broker: tables are dicts
that outlive the stage (a restart restores them), the windows topic records what is sent
and leaves deliveries pending until the test acknowledges them, and reading the topic back
(`windows_since`, tested on a real broker in tests/integration/test_windows_readback.py)
answers from what the test says reached Kafka."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest

from streams.contract.kafka_security import KafkaSecurity
from streams.eventtime import WindowKey
from streams.funnel.aggregates import WindowAggregate
from streams.merge import agent as merge_agent
from streams.merge.agent import MergeStage
from streams.merge.partition import window_key
from streams.runtime.metrics import Metrics
from streams.runtime.settings import load_settings
from streams.runtime.topics import Topics

S = 1_000
TABLES = ("state_table",)


class WindowsTopic:
    """Records window sends; a delivery completes when the test acknowledges it."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], asyncio.Future[None]]] = []

    def get_topic_name(self) -> str:
        return "windows"

    def send_soon(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent.append((orjson.loads(value), delivery))
        return delivery

    def windows(self) -> list[WindowKey]:
        return [window_key(record) for record, _ in self.sent]

    def acknowledge(self) -> None:
        for _, delivery in self.sent:
            if not delivery.done():
                delivery.set_result(None)


def new_stage(tables: dict[str, Any], on_kafka: set[WindowKey], monkeypatch: Any) -> MergeStage:
    """A stage-3 worker over `tables` (its restored state); `on_kafka`: the windows the
    windows topic holds when it reads it back."""
    settings = load_settings(partitions=1, window_ms=10 * S, grace_ms=0)
    app = faust.App("test-merge-agent", broker="kafka://127.0.0.1:1", store="memory://")
    stage = MergeStage(app, settings, Topics.declare(app, settings), Metrics())
    stage.topics = SimpleNamespace(windows=WindowsTopic())  # type: ignore[assignment]
    for name in TABLES:
        setattr(stage, name, tables.setdefault(name, {}))
    stage.buyers.table = tables.setdefault("buyers", {})  # type: ignore[assignment]

    async def read_back(*args: Any) -> set[WindowKey]:
        return set(on_kafka)

    monkeypatch.setattr(merge_agent, "windows_since", read_back)
    return stage


def partials(offset: int, windows: list[int], closed_before: int) -> SimpleNamespace:
    """A stage-2 message with a click in each window (starts in s) and its closed mark."""
    agg = WindowAggregate()
    agg.counts["click"] = 1
    value = {
        "source": 0,
        "partials": [
            {"store_id": "s1", "channel": "app", "window_start": start * S, "agg": agg.to_dict()}
            for start in windows
        ],
        "closed_before": closed_before * S,
    }
    return SimpleNamespace(
        message=SimpleNamespace(partition=0, offset=offset), value=orjson.dumps(value)
    )


def sent(stage: MergeStage) -> list[WindowKey]:
    return stage.topics.windows.windows()  # type: ignore[attr-defined,no-any-return]


FIRST = ("s1", "app", 0)
SECOND = ("s1", "app", 10 * S)


async def test_a_window_whose_mark_survived_a_crash_without_it_is_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The mark that the first window was emitted reached Kafka, the window itself did not
    (the worker was killed between the two produce requests): the restarted worker sends it
    from the mark. Before, it never came out (8 of 927 windows missing in a CI run)."""
    tables: dict[str, Any] = {}
    before = new_stage(tables, set(), monkeypatch)
    await before.handle([partials(0, [0, 10], closed_before=10)])  # type: ignore[list-item]
    assert sent(before) == [FIRST]  # and never acknowledged: the kill

    heard: list[WindowKey] = []
    after = new_stage(tables, on_kafka=set(), monkeypatch=monkeypatch)
    after.listeners.append(lambda r: _note(heard, r))
    await after.handle([partials(1, [], closed_before=10)])  # type: ignore[list-item]
    assert sent(after) == [FIRST]
    assert heard == [FIRST]  # the detectors judge it too
    assert after.recent["s1", "app"][-1]["counts"]["click"] == 1


async def test_a_window_on_kafka_is_not_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same crash, but the window had reached Kafka: nothing is sent again."""
    tables: dict[str, Any] = {}
    before = new_stage(tables, set(), monkeypatch)
    await before.handle([partials(0, [0, 10], closed_before=10)])  # type: ignore[list-item]

    after = new_stage(tables, on_kafka={FIRST}, monkeypatch=monkeypatch)
    await after.handle([partials(1, [], closed_before=10)])  # type: ignore[list-item]
    assert sent(after) == []


async def test_a_window_whose_mark_was_lost_is_not_emitted_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The other way round: the window reached Kafka, the mark of its batch did not (the
    tables are as before the batch), and the batch is read again after the restart."""
    tables: dict[str, Any] = {}
    first = new_stage(tables, set(), monkeypatch)
    await first.handle([partials(0, [0, 10], closed_before=0)])  # type: ignore[list-item]
    first.topics.windows.acknowledge()  # type: ignore[attr-defined]
    saved = {name: dict(table) for name, table in tables.items()}
    await first.handle([partials(1, [], closed_before=10)])  # type: ignore[list-item]
    assert sent(first) == [FIRST]

    after = new_stage(saved, on_kafka={FIRST}, monkeypatch=monkeypatch)
    await after.handle([partials(1, [], closed_before=10)])  # type: ignore[list-item]
    await after.handle([partials(2, [20], closed_before=20)])  # type: ignore[list-item]
    assert sent(after) == [SECOND]


async def test_the_mark_lists_a_window_until_kafka_acknowledges_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tables: dict[str, Any] = {}
    stage = new_stage(tables, set(), monkeypatch)
    await stage.handle([partials(0, [0, 10], closed_before=10)])  # type: ignore[list-item]
    assert [window_key(r) for r in _mark(tables)["unsent"]] == [FIRST]
    stage.topics.windows.acknowledge()  # type: ignore[attr-defined]
    await asyncio.sleep(0)  # the delivery's callbacks
    await stage.handle([partials(1, [20], closed_before=20)])  # type: ignore[list-item]
    assert [window_key(r) for r in _mark(tables)["unsent"]] == [SECOND]


def _mark(tables: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(tables["state_table"]["m|0"])  # type: ignore[no-any-return]


class LoggedTable(dict[str, bytes]):
    """Records its writes in order, as its changelog partition would hold them."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, bytes | None]] = []

    def __setitem__(self, key: str, value: bytes) -> None:
        super().__setitem__(key, value)
        self.writes.append((key, value))

    def pop(self, key: str, default: Any = None) -> Any:
        self.writes.append((key, None))
        return super().pop(key, default)


async def test_a_kill_after_the_mark_and_before_the_drop_of_final_partials_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pending partials and the mark are one table, so a kill keeps a prefix of its writes,
    and the mark goes first: partials gone means the mark that made their window final was
    kept, and lists the window until Kafka has it. In two tables before, a kill could keep
    the drop and lose the mark and the window, whose partials had been read before the last
    commit: 16 of 927 windows never came out in a CI run. Here the kill comes right after
    the mark: the restored worker sends the window again and drops its stale partials."""
    logged = LoggedTable()
    before = new_stage({"state_table": logged}, set(), monkeypatch)
    await before.handle([partials(0, [0, 10], closed_before=10)])  # type: ignore[list-item]
    keys = [key for key, _ in logged.writes]
    mark, drop = keys.index("m|0"), keys.index(f"w|s1|app|{FIRST[2]}")
    assert mark < drop

    kept: dict[str, bytes] = {}
    for key, value in logged.writes[: mark + 1]:
        if value is None:
            kept.pop(key, None)
        else:
            kept[key] = value
    after = new_stage({"state_table": kept}, on_kafka=set(), monkeypatch=monkeypatch)
    await after.handle([partials(1, [], closed_before=10)])  # type: ignore[list-item]
    assert sent(after) == [FIRST]
    assert f"w|s1|app|{FIRST[2]}" not in kept


async def _note(heard: list[WindowKey], record: dict[str, Any]) -> None:
    heard.append(window_key(record))


async def test_a_read_back_slow_to_stop_does_not_hold_stage_3(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Kafka client that takes long to stop once cancelled: stage 3 goes on at the
    timeout, without the read-back (logged), and sends nothing again."""
    from streams.merge import emitted

    async def slow_to_stop(*args: Any) -> set[WindowKey]:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(1.0)
        return set()

    monkeypatch.setattr(emitted, "_read", slow_to_stop)
    monkeypatch.setattr(emitted, "READ_BACK_TIMEOUT_S", 0.05)
    started = time.monotonic()
    assert await emitted.windows_since("x:1", KafkaSecurity(), "w", 0) is None
    assert time.monotonic() - started < 0.5
    await asyncio.sleep(1.1)  # the client's stop ends within the test
