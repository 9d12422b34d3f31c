"""The quiet index: keys by the event time they turn slow, moved (not duplicated) on a sale."""

from __future__ import annotations

from streams.inventory.quiet import BUCKET_MS, QuietIndex

T0 = 1_794_326_400_000


def test_keys_come_due_by_their_own_partitions_event_time() -> None:
    index = QuietIndex()
    index.set("a", T0 + 1_000)
    index.set("b", T0 + 2_000)
    index.set("c", T0 + 5 * BUCKET_MS)
    lagging = {"a": T0 + 1_000, "b": T0 + 1_500, "c": T0 + 10 * BUCKET_MS}
    assert index.pop_due(T0 + 10 * BUCKET_MS, lagging.get) == ["a", "c"]
    assert len(index) == 1 and index.due_of("b") == T0 + 2_000  # its partition lags behind
    assert index.pop_due(T0 + 2_000, {"b": T0 + 2_000}.get) == ["b"]
    assert len(index) == 0


def test_a_sale_moves_a_key_and_no_stock_forgets_it() -> None:
    index = QuietIndex()
    for second in range(1_000):  # a hot SKU: its due time moves on every sale
        index.set("hot", T0 + second * 1_000 + BUCKET_MS)
    assert len(index) == 1 and index.due_of("hot") == T0 + 999_000 + BUCKET_MS
    assert index.pop_due(T0 + 900_000, lambda key: T0 + 900_000) == []
    index.set("hot", None)
    assert len(index) == 0 and index.pop_due(T0 + 10**9, lambda key: T0 + 10**9) == []
