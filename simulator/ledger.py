"""Every change to a store x SKU's stock, in event time, as the generator makes it."""

from __future__ import annotations

__all__ = ["ADJUST", "HOLD", "RELEASE", "RESTOCK", "RETURN", "StockLedger"]

HOLD, RELEASE, RETURN, RESTOCK, ADJUST = range(5)


class StockLedger:
    """Stock changes per store x SKU (by popularity rank): (ts_ms, delta, kind).

    A pair may be protected until some time: no change may raise its stock before then
    (the sellout incident needs stock that only goes down until it is restocked).
    """

    def __init__(self, skus_per_store: int) -> None:
        self._skus = skus_per_store
        self.changes: dict[int, list[tuple[int, int, int]]] = {}
        self._protected: dict[int, int] = {}

    def pair(self, store: int, rank: int) -> int:
        return store * self._skus + rank

    def split(self, pair: int) -> tuple[int, int]:
        return divmod(pair, self._skus)

    def protect(self, store: int, rank: int, until_ms: int) -> None:
        self._protected[self.pair(store, rank)] = until_ms

    def protected_until(self, store: int, rank: int) -> int:
        return self._protected.get(store * self._skus + rank, 0)

    def may_raise(self, store: int, rank: int, ts_ms: int) -> bool:
        return ts_ms >= self._protected.get(store * self._skus + rank, 0)

    def add(self, store: int, rank: int, ts_ms: int, delta: int, kind: int) -> None:
        key = store * self._skus + rank
        entries = self.changes.get(key)
        if entries is None:
            self.changes[key] = [(ts_ms, delta, kind)]
        else:
            entries.append((ts_ms, delta, kind))

    def sorted_changes(self, pair: int) -> list[tuple[int, int, int]]:
        entries = self.changes.get(pair, [])
        entries.sort()
        return entries
