"""GET /api/windows/{store_id}/{channel}: the open and recent closed windows.

Closed windows are answered by the worker that merges that store (others
redirect there). The open window is merged from the stage-2 partitions this worker holds,
and says which ones (`open_partitions`): with one worker it is complete; with several, the
Prometheus counters summed over workers are the live total.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

from streams.contract.routing import merge_partition
from streams.funnel.agent import FunnelStage
from streams.funnel.aggregates import WindowAggregate
from streams.merge.agent import MergeStage
from streams.merge.partition import window_record
from streams.runtime.ownership import redirect_or_none

__all__ = ["register"]


def open_windows(funnel: FunnelStage, store_id: str, channel: str) -> list[dict[str, Any]]:
    merged: dict[int, WindowAggregate] = {}
    for state in funnel.partitions.values():
        for (store, ch, start), aggregate in state.windows.items():
            if store == store_id and ch == channel:
                merged.setdefault(start, WindowAggregate()).merge(aggregate)
    window_ms = funnel.settings.window_ms
    for aggregate in merged.values():
        aggregate.fold()  # a copy: the order and pay candidates so far count here
    return [
        window_record((store_id, channel, start), window_ms, merged[start])
        for start in sorted(merged)
    ]


def register(app: faust.App, funnel: FunnelStage, merge: MergeStage) -> None:
    @app.page("/api/windows/{store_id}/{channel}")
    async def windows(web: View, request: Request, store_id: str, channel: str) -> Response:
        q = merge_partition(store_id, funnel.settings.partitions)
        elsewhere = redirect_or_none(app, merge.state_table, q, web, request)
        if elsewhere is not None:
            return elsewhere
        return web.json(
            {
                "store_id": store_id,
                "channel": channel,
                "open": open_windows(funnel, store_id, channel),
                "open_partitions": sorted(funnel.partitions),
                "partitions": funnel.settings.partitions,
                "closed": merge.recent.get((store_id, channel), []),
            }
        )
