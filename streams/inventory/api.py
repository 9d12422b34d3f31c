"""The inventory HTTP API (docs/api.md).

`GET /api/stock/{store_id}/{sku}`: one key, answered by the worker that owns its partition
(others answer 307 to the owner, or 404 while nobody owns it).

`GET /api/stock/{store_id}?status=out,low&limit=100`: the store's SKUs that are out of
stock or running low (or, with `status=slow`, slow-moving), most urgent first. A store's
SKUs are spread over every partition, so the worker asked answers from its own partitions
and asks each other owner for theirs (`scope=local`); `missing_partitions` lists the ones
nobody answered for.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import faust
from faust.web import Request, Response, View
from yarl import URL

from streams.inventory.agent import InventoryStage
from streams.inventory.stock import Status, StockStatus
from streams.runtime.ownership import owner_url, redirect_or_none

__all__ = ["register"]

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
FAN_OUT_TIMEOUT_S = 2.0


def parse_statuses(raw: str | None) -> list[Status] | None:
    """Some of `out`, `low`, `slow` (default `out,low`); None if invalid."""
    if not raw:
        return [Status.OUT, Status.LOW]
    try:
        statuses = [Status(part.strip()) for part in raw.split(",") if part.strip()]
    except ValueError:
        return None
    if not statuses or Status.OK in statuses:
        return None
    return list(dict.fromkeys(statuses))


def parse_limit(raw: str | None) -> int | None:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        return None
    return limit if 1 <= limit <= MAX_LIMIT else None


class StockViews:
    def __init__(self, app: faust.App, stage: InventoryStage) -> None:
        self.app = app
        self.stage = stage

    def _recovering(self, web: View) -> Response | None:
        if self.app.rebalancing or self.app.in_recovery:
            return web.json(
                {"error": "this worker is restoring its tables; try again shortly"},
                status=503,
                headers={"Retry-After": "2"},
            )
        return None

    async def one(self, web: View, request: Request, store_id: str, sku: str) -> Response:
        p = self.stage.key_partition(store_id, sku)
        elsewhere = redirect_or_none(self.app, self.stage.table, p, web, request)
        if elsewhere is not None:
            return elsewhere
        busy = self._recovering(web)
        if busy is not None:
            return busy
        body = self.stage.lookup(store_id, sku)
        if body is None:
            return web.json({"error": f"no stock events for store {store_id!r}, sku {sku!r}"},
                            status=404)  # fmt: skip
        return web.json(body)

    async def store(self, web: View, request: Request, store_id: str) -> Response:
        statuses = parse_statuses(request.query.get("status"))
        if statuses is None:
            return web.json(
                {"error": "status must be out, low, slow or a list of them"}, status=400
            )
        limit = parse_limit(request.query.get("limit"))
        if limit is None:
            return web.json({"error": f"limit must be 1-{MAX_LIMIT}"}, status=400)
        busy = self._recovering(web)
        if busy is not None:
            return busy
        stage = self.stage
        covered = set(stage.partitions) & stage.assigned()
        found = stage.flagged(store_id, statuses)
        if request.query.get("scope") != "local":
            others = await self._ask_owners(request, store_id, statuses, covered)
            for partitions, skus in others:
                covered |= partitions
                found.extend(skus)
        found.sort(key=StockStatus.urgency)
        missing = sorted(set(range(stage.settings.partitions)) - covered)
        return web.json(
            {
                "store_id": store_id,
                "status": [s.value for s in statuses],
                "count": len(found),
                "skus": [s.to_dict() for s in found[:limit]],
                "partitions": sorted(covered),
                "missing_partitions": missing,
                "complete": not missing,
            }
        )

    async def _ask_owners(
        self, request: Request, store_id: str, statuses: list[Status], covered: set[int]
    ) -> list[tuple[set[int], list[StockStatus]]]:
        me = str(self.app.conf.canonical_url).rstrip("/")
        hosts: set[str] = set()
        for p in range(self.stage.settings.partitions):
            owner = owner_url(self.app, self.stage.table, p) if p not in covered else None
            if owner is not None and owner != me:
                hosts.add(owner)
        query = {"status": ",".join(s.value for s in statuses), "scope": "local",
                 "limit": str(MAX_LIMIT)}  # fmt: skip
        path = request.url.path
        answers = await asyncio.gather(
            *(self._ask(URL(host).with_path(path).with_query(query)) for host in sorted(hosts))
        )
        return [answer for answer in answers if answer is not None]

    async def _ask(self, url: URL) -> tuple[set[int], list[StockStatus]] | None:
        try:
            timeout = aiohttp.ClientTimeout(total=FAN_OUT_TIMEOUT_S)
            async with self.app.http_client.get(url, timeout=timeout) as response:
                if response.status != 200:
                    log.warning("inventory: %s answered %s", url, response.status)
                    return None
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("inventory: %s did not answer: %s", url, exc)
            return None
        return set(body["partitions"]), [StockStatus.from_dict(item) for item in body["skus"]]


def register(app: faust.App, stage: InventoryStage) -> None:
    views = StockViews(app, stage)

    @app.page("/api/stock/{store_id}/{sku}")
    async def stock_sku(web: View, request: Request, store_id: str, sku: str) -> Response:
        return await views.one(web, request, store_id, sku)

    @app.page("/api/stock/{store_id}")
    async def stock_store(web: View, request: Request, store_id: str) -> Response:
        return await views.store(web, request, store_id)
