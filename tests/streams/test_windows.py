from __future__ import annotations

from streams.windows import StreamClock, window_start


def test_windows_align_to_the_epoch() -> None:
    assert window_start(119_999, 60_000) == 60_000
    assert window_start(120_000, 60_000) == 120_000


def test_window_closes_at_end_plus_grace() -> None:
    clock = StreamClock(window_ms=60_000, grace_ms=30_000, idle_ms=10_000)
    assert clock.closed_before_ms is None
    clock.observe(89_999, wall_ms=0)
    assert clock.closed_before_ms == 0  # [0, 60s) still open
    assert not clock.is_late(0)
    clock.observe(90_000, wall_ms=0)
    assert clock.closed_before_ms == 60_000
    assert clock.is_late(59_999)
    assert not clock.is_late(60_000)


def test_out_of_order_event_does_not_move_stream_time_back() -> None:
    clock = StreamClock(60_000, 30_000, 10_000)
    clock.observe(200_000, wall_ms=0)
    clock.observe(100_000, wall_ms=1)
    assert clock.stream_ms == 200_000


def test_idle_partition_advances_by_wall_clock() -> None:
    clock = StreamClock(60_000, 30_000, idle_ms=10_000)
    assert not clock.advance_if_idle(wall_ms=50_000)  # nothing seen: nothing to advance
    clock.observe(100_000, wall_ms=1_000)
    assert not clock.advance_if_idle(wall_ms=5_000)
    assert clock.advance_if_idle(wall_ms=11_000)
    assert clock.stream_ms == 110_000
    assert clock.advance_if_idle(wall_ms=12_000)
    assert clock.stream_ms == 111_000
