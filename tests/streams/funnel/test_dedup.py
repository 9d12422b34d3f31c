from __future__ import annotations

from streams.funnel.dedup import BUCKET_MS, Admission, Deduplicator

NEW, DUPLICATE = Admission.NEW, Admission.DUPLICATE


def test_repeat_within_horizon_is_a_duplicate() -> None:
    dedup = Deduplicator(horizon_ms=15 * 60_000)
    assert dedup.admit("a", 1_000, late=False) is NEW
    assert dedup.admit("a", 1_000, late=False) is DUPLICATE
    # a re-send with another ts is still the same event
    assert dedup.admit("a", 500_000, late=False) is DUPLICATE


def test_a_late_copy_does_not_make_its_on_time_original_a_duplicate() -> None:
    dedup = Deduplicator(horizon_ms=15 * 60_000)
    assert dedup.admit("a", 1_000, late=True) is NEW  # counted as late
    assert dedup.admit("a", 1_000, late=True) is DUPLICATE  # a second late copy
    assert dedup.admit("a", 1_000, late=False) is NEW  # the original still counts
    assert dedup.admit("a", 1_000, late=True) is DUPLICATE
    assert dedup.admit("a", 1_000, late=False) is DUPLICATE


def test_ids_are_forgotten_past_the_horizon_and_restored_from_state() -> None:
    dedup = Deduplicator(horizon_ms=60_000)
    dedup.admit("a", 0, late=False)
    dedup.admit("b", 0, late=True)
    added = dedup.take_added()
    assert added == {0: (["a"], ["b"])}
    assert dedup.take_added() == {}
    assert dedup.expire(stream_ms=60_000 + BUCKET_MS) == []
    assert dedup.expire(stream_ms=60_000 + BUCKET_MS + 1) == [0]
    assert dedup.admit("a", 200_000, late=False) is NEW

    restored = Deduplicator(horizon_ms=60_000)
    restored.restore(0, *added[0])
    assert restored.admit("a", 10, late=False) is DUPLICATE
    assert restored.admit("b", 10, late=True) is DUPLICATE
    assert restored.admit("b", 10, late=False) is NEW
