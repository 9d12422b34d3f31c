"""Repeated warnings and errors: the first shown, the rest counted into the next one."""

from __future__ import annotations

import logging

from streams.runtime.repeated_logs import EVERY_TIME, RepeatFilter


def record(
    msg: str, *args: object, level: int = logging.ERROR, name: str = "aiokafka"
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_flood_is_one_line_then_one_line_with_its_count() -> None:
    now = [0.0]
    repeat_filter = RepeatFilter(window_s=30, clock=lambda: now[0])
    template = "Unable connect to node with id %s: %s"
    shown = [repeat_filter.filter(record(template, 1, f"error {i}")) for i in range(1_100)]
    assert shown == [True] + [False] * 1_099
    now[0] = 31.0
    late = record(template, 1, "again")
    assert repeat_filter.filter(late)
    assert late.getMessage() == (
        "Unable connect to node with id 1: again [and 1,099 more like it in the last 30 s]"
    )


def test_other_messages_and_info_lines_pass() -> None:
    repeat_filter = RepeatFilter(window_s=30, clock=lambda: 0.0)
    assert repeat_filter.filter(record("a %s", 1))
    assert repeat_filter.filter(record("b %s", 1))
    assert repeat_filter.filter(record("a %s", 1, name="faust"))
    assert all(repeat_filter.filter(record("ingest: %s", i, level=logging.INFO)) for i in range(5))


def test_a_record_marked_every_time_always_passes() -> None:
    """Every alert's change of state is news: the filter once let one per 30 s through."""
    repeat_filter = RepeatFilter(window_s=30, clock=lambda: 0.0)
    logger = logging.getLogger("alerts.stage")
    marked = [
        logger.makeRecord(
            logger.name, logging.WARNING, __file__, 1, "alert %s", (i,), None, extra=EVERY_TIME
        )
        for i in range(3)
    ]
    assert all(repeat_filter.filter(r) for r in marked)
    assert repeat_filter.filter(record("alert %s", 1, name="alerts.stage"))
    assert not repeat_filter.filter(record("alert %s", 2, name="alerts.stage"))
