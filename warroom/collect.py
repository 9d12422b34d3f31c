"""One look at a worker: its metrics, health, windows, stock and alerts, as a Board."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streams.runtime.metrics import OTHER
from warroom.board import Board, build_board
from warroom.exposition import Exposition
from warroom.worker_api import WorkerApi, WorkerUnreachable

__all__ = ["read_board"]

_PARALLEL = 8  # requests in flight to the workers


def read_board(api: WorkerApi, now_ms: int, max_stores: int = 8, stock_limit: int = 20) -> Board:
    """The board as the worker at `api` sees it; stores beyond `max_stores` (by GMV, then
    traffic) are in the totals but not asked for windows and stock. Never raises for a
    worker that does not answer: the board says so."""
    try:
        metrics = Exposition.parse(api.text("/metrics"))
        healthy = api.get("/health")[0] == 200
    except WorkerUnreachable as exc:
        return Board(api.base_url, None, problems=[str(exc)])
    pairs = metrics.label_sets("salewatch_funnel_events_total", "store", "channel")
    stores = _top_stores(metrics, {store for store, _ in pairs}, max_stores)
    problems: list[str] = []

    def ask(path: str, **query: str) -> Any:
        try:
            return api.json(path, **query)
        except WorkerUnreachable as exc:
            problems.append(str(exc))
            return None

    wanted = sorted((s, c) for s, c in pairs if s in stores)
    with ThreadPoolExecutor(_PARALLEL) as pool:
        windows = pool.map(lambda key: ask(f"/api/windows/{key[0]}/{key[1]}"), wanted)
        stock = pool.map(
            lambda s: ask(f"/api/stock/{s}", status="out,low", limit=str(stock_limit)), stores
        )
        alerts = pool.submit(ask, "/api/alerts")
        board = build_board(
            api.base_url,
            now_ms,
            healthy,
            metrics,
            {key: answer for key, answer in zip(wanted, windows, strict=True) if answer},
            [answer for answer in stock if answer],
            alerts.result(),
        )
    board.problems = sorted(set(problems))
    return board


def _top_stores(metrics: Exposition, stores: set[str], limit: int) -> list[str]:
    stores |= {store for (store,) in metrics.label_sets("salewatch_stock_out_skus", "store")}
    stores.discard(OTHER)  # the label cap's bucket: no such store to ask for
    gmv = metrics.by("salewatch_gmv_total", "store")
    traffic = metrics.by("salewatch_funnel_events_total", "store", stage="impression")
    ranked = sorted(stores, key=lambda s: (-gmv.get(s, 0.0), -traffic.get(s, 0.0), s))
    return ranked[:limit]
