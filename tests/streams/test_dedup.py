from __future__ import annotations

from streams.dedup import BUCKET_MS, Deduplicator


def test_repeat_within_horizon_is_a_duplicate() -> None:
    dedup = Deduplicator(horizon_ms=15 * 60_000)
    assert not dedup.seen("a", 1_000)
    assert dedup.seen("a", 1_000)
    assert dedup.seen("a", 500_000)  # a re-send with another ts is still the same event


def test_ids_are_forgotten_past_the_horizon_and_restored_from_state() -> None:
    dedup = Deduplicator(horizon_ms=60_000)
    dedup.seen("a", 0)
    added = dedup.take_added()
    assert added == {0: ["a"]}
    assert dedup.take_added() == {}
    assert dedup.expire(stream_ms=60_000 + BUCKET_MS) == []
    assert dedup.expire(stream_ms=60_000 + BUCKET_MS + 1) == [0]
    assert not dedup.seen("a", 200_000)

    restored = Deduplicator(horizon_ms=60_000)
    restored.restore(0, added[0])
    assert restored.seen("a", 10)
