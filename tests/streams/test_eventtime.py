from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from aiokafka import TopicPartition

from streams import eventtime
from streams.eventtime import InputProgress, Watermark, is_late, window_start

W, GRACE = 60_000, 30_000


def watermark() -> Watermark:
    return Watermark(window_ms=W, grace_ms=GRACE)


def test_windows_align_to_the_epoch() -> None:
    assert window_start(119_999, W) == 60_000
    assert window_start(120_000, W) == 120_000


def test_nothing_closes_until_every_input_reported() -> None:
    mark = watermark()
    mark.report({"clicks:0": [200_000, False]}, expected_inputs=2, wall_ms=0)
    assert mark.closed_before_ms is None
    mark.report({"orders:0": [None, True]}, expected_inputs=2, wall_ms=0)
    assert mark.watermark_ms == 200_000


def test_window_closes_at_end_plus_grace() -> None:
    mark = watermark()
    mark.report({"clicks:0": [89_999, False]}, expected_inputs=1, wall_ms=0)
    assert mark.closed_before_ms == 0  # [0, 60s) still open
    assert not mark.is_late(0)
    mark.report({"clicks:0": [90_000, False]}, expected_inputs=1, wall_ms=0)
    assert mark.closed_before_ms == 60_000
    assert mark.is_late(59_999)
    assert not mark.is_late(60_000)


def test_an_input_that_is_not_idle_holds_the_watermark_to_its_own_progress() -> None:
    mark = watermark()
    mark.report({"clicks:0": [500_000, False], "orders:0": [100_000, False]}, 2, wall_ms=0)
    assert mark.watermark_ms == 100_000
    mark.report({"orders:0": [None, False]}, 2, wall_ms=0)  # restarted reader, nothing read yet
    assert mark.watermark_ms == 100_000  # holds, and never moves back
    mark.report({"orders:0": [450_000, False]}, 2, wall_ms=0)
    assert mark.watermark_ms == 450_000
    mark.report({"orders:0": [450_000, True]}, 2, wall_ms=0)  # quiet: holds nothing back
    assert mark.watermark_ms == 500_000


def test_when_every_input_is_idle_the_wall_clock_moves_it() -> None:
    mark = watermark()
    mark.report({"clicks:0": [100_000, False]}, 1, wall_ms=1_000)
    mark.advance(wall_ms=5_000)
    assert mark.watermark_ms == 100_000
    mark.report({"clicks:0": [100_000, True]}, 1, wall_ms=11_000)
    assert mark.watermark_ms == 110_000  # event time read + wall time since it was read
    mark.advance(wall_ms=15_000)
    assert mark.watermark_ms == 114_000
    mark.report({"clicks:0": [100_000, False]}, 1, wall_ms=20_000)  # new data: no advance
    assert mark.watermark_ms == 114_000


def test_a_restored_watermark_moves_on_when_every_input_is_idle_and_nothing_was_read() -> None:
    mark = watermark()
    mark.watermark_ms = 500_000  # restored from the table after a restart
    mark.report({"clicks:0": [None, True], "orders:0": [None, True]}, 2, wall_ms=1_000)
    mark.advance(wall_ms=4_000)
    assert mark.watermark_ms == 503_000


def test_a_reader_that_took_an_input_over_does_not_move_its_stream_time_back() -> None:
    mark = watermark()
    mark.report({"clicks:0": [200_000, False]}, 1, wall_ms=0)
    mark.report({"clicks:0": [None, False]}, 1, wall_ms=0)  # the new reader read nothing yet
    assert mark.inputs["clicks:0"] == (200_000, False)
    mark.report({"clicks:0": [150_000, False]}, 1, wall_ms=0)
    assert mark.inputs["clicks:0"] == (200_000, False)
    assert mark.watermark_ms == 200_000


def test_an_input_assigned_starts_from_the_stream_time_of_its_last_commit() -> None:
    """Whatever this reader knew of it before: the input is read again from that commit."""
    progress = InputProgress(consumer=None, idle_ms=1_000)  # type: ignore[arg-type]
    progress.observe({"shop.clicks:0": 90_000, "shop.orders:1": 7_000}, [])
    progress.assigned(["shop.clicks:0", "shop.carts:2"], {"shop.carts:2": 5_000})
    assert progress.max_ts == {"shop.orders:1": 7_000, "shop.carts:2": 5_000}
    progress.observe({"shop.carts:2": 6_000}, [])
    progress.rewind()  # nothing committed since the assignment: back to what it came with
    assert progress.max_ts == {"shop.carts:2": 5_000}


def test_one_lateness_rule_for_stream_time_and_watermark() -> None:
    """Late once stream time reached the window's end plus grace, whoever judges it."""
    assert not is_late(1_000, None, W, GRACE)
    assert not is_late(1_000, W + GRACE - 1, W, GRACE)
    assert is_late(1_000, W + GRACE, W, GRACE)
    mark = watermark()
    mark.report({"clicks:0": [W + GRACE, False]}, expected_inputs=1, wall_ms=0)
    assert mark.is_late(1_000) and not mark.is_late(W)


def test_reading_again_from_the_last_commit_starts_from_its_stream_time() -> None:
    progress = InputProgress(consumer=None, idle_ms=1_000)  # type: ignore[arg-type]
    progress.observe({"shop.clicks:0": 1_000}, [])
    progress.checkpoint()
    progress.observe({"shop.clicks:0": 90_000, "shop.carts:1": 5}, [])
    progress.rewind()
    assert progress.max_ts == {"shop.clicks:0": 1_000}


def test_a_worker_that_takes_over_after_everything_was_read_still_closes_windows() -> None:
    """The previous owner read every event but never got a watermark out; the new one reads
    nothing new and its stage 1 knows no stream time. The inputs' stream times saved with
    the state are what lets the wall clock move the watermark on (found by the
    differential test: a SIGTERM restart of a backfill left every window unemitted)."""
    before = watermark()
    before.report({"clicks:0": [100_000, False], "orders:0": [90_000, False]}, 2, wall_ms=0)
    saved = {"watermark_ms": None, "inputs": before.saved()["inputs"]}

    after = watermark()
    after.restore(saved)
    idle_and_unknown = {"clicks:0": [None, True], "orders:0": [None, True]}
    after.report(idle_and_unknown, expected_inputs=2, wall_ms=1_000)
    after.report(idle_and_unknown, expected_inputs=2, wall_ms=1_000 + W + GRACE)
    assert after.closed_before_ms is not None and after.closed_before_ms >= W

    forgotten = watermark()  # what the new owner had before: nothing saved but the windows
    forgotten.report(idle_and_unknown, expected_inputs=2, wall_ms=1_000 + W + GRACE)
    assert forgotten.closed_before_ms is None


@dataclass
class ReadToEndConsumer:
    """Every assigned input read to its end, as the last fetch answered says; `answered_ms`:
    when that was (None: just now)."""

    assigned: set[TopicPartition]
    answered_ms: float | None = None

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def highwater(self, tp: TopicPartition) -> int:
        return 10

    def last_poll_timestamp(self, tp: TopicPartition) -> int:
        return int(time.time() * 1000 if self.answered_ms is None else self.answered_ms)

    async def position(self, tp: TopicPartition) -> int:
        return 10

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def subscription(self) -> set[str]:
        return {tp.topic for tp in self.assigned}


async def test_after_a_pause_every_input_gets_idle_ms_to_show_it_has_something(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Workers idle before a backfill whose clicks lag the orders in event time: the orders
    come first, and the clicks input, quiet since before, must not count as idle yet (the
    orders' event time would close the clicks' windows before they are read)."""
    clicks, orders = TopicPartition("shop.clicks", 0), TopicPartition("shop.orders", 0)
    consumer = ReadToEndConsumer({clicks, orders})
    progress = InputProgress(consumer, idle_ms=1_000)  # type: ignore[arg-type]
    now = [0.0]
    monkeypatch.setattr(eventtime.time, "monotonic", lambda: now[0])

    async def idle() -> dict[str, bool]:
        report, _lag = await progress.report()
        return {name: mark[1] for name, mark in report["marks"].items()}

    assert await idle() == {"shop.clicks:0": False, "shop.orders:0": False}  # just assigned
    now[0] = 10.0
    assert await idle() == {"shop.clicks:0": True, "shop.orders:0": True}  # nothing came
    now[0] = 10.5
    progress.observe({"shop.orders:0": 60_000}, [orders])  # the stream resumes
    now[0] = 10.6
    assert await idle() == {"shop.clicks:0": False, "shop.orders:0": False}
    now[0] = 11.6
    assert await idle() == {"shop.clicks:0": True, "shop.orders:0": True}  # idle_ms later


async def test_an_input_whose_fetches_go_unanswered_is_not_idle_until_idle_ms_after_they_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The broker away: the last fetch said "read to its end", but its producers hold what
    they sent meanwhile and deliver it when the broker is back. Counted idle, the inputs
    would let the watermark follow the wall clock through the outage and make that backlog
    late (found by the crash suite's broker restart: 15 of 927 windows short)."""
    clicks = TopicPartition("shop.clicks", 0)
    consumer = ReadToEndConsumer({clicks})
    progress = InputProgress(consumer, idle_ms=1_000)  # type: ignore[arg-type]
    now = [0.0]
    monkeypatch.setattr(eventtime.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(eventtime.time, "time", lambda: 1_000_000 + now[0])

    async def idle() -> bool:
        report, _lag = await progress.report()
        return bool(report["marks"]["shop.clicks:0"][1])

    assert not await idle()
    now[0] = 5.0
    assert await idle()  # read to its end and quiet
    consumer.answered_ms = (1_000_000 + 5.0) * 1000  # the broker stops answering
    now[0] = 5.0 + eventtime.END_KNOWN_WITHIN_MS / 1000 + 0.1
    assert not await idle()
    now[0] = 40.0
    assert not await idle()  # still away
    consumer.answered_ms = None  # answered again: nothing new at the last fetch
    now[0] = 40.5
    assert not await idle()  # the backlog may be on its way
    now[0] = 41.1
    assert await idle()


def test_an_idle_input_whose_reports_stop_holds_the_watermark_where_it_stands() -> None:
    """Stage 1 said every input is idle, then went silent (killed, or the broker away): the
    wall clock must not close windows over the backlog building up meanwhile."""
    mark = watermark()
    idle = {"clicks:0": [100_000, True], "orders:0": [90_000, True]}
    mark.report(idle, expected_inputs=2, wall_ms=0)
    mark.advance(wall_ms=eventtime.REPORT_STALE_MS)
    assert mark.watermark_ms == 100_000 + eventtime.REPORT_STALE_MS  # heard lately: on
    mark.advance(wall_ms=eventtime.REPORT_STALE_MS + 60_000)
    assert mark.watermark_ms == 100_000 + eventtime.REPORT_STALE_MS  # silent: held
    mark.report(idle, expected_inputs=2, wall_ms=70_000)  # heard again, still idle
    assert mark.watermark_ms == 170_000
