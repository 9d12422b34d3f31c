"""Which worker owns a partition of a table, for HTTP APIs that answer per key.

State lives on the worker that owns the key's partition; other workers redirect there.
"""

from __future__ import annotations

import faust
from faust.web import Request, Response, View

from streams.runtime.state import PartitionedTable

__all__ = ["owner_url", "redirect_or_none"]


def owner_url(app: faust.App, table: PartitionedTable, partition: int) -> str | None:
    """Base URL of the worker holding `partition` of the table, None if unknown."""
    topic = table.changelog_topic.get_topic_name()
    for host, assignment in app.assignor.table_metadata(topic).items():
        if partition in assignment.get(topic, ()):
            return str(host).rstrip("/")
    return None


def redirect_or_none(
    app: faust.App, table: PartitionedTable, partition: int, web: View, request: Request
) -> Response | None:
    """None when this worker owns the partition; else a 307 to the owner, or a 404."""
    if app.assignor.is_active(faust.types.TP(table.changelog_topic.get_topic_name(), partition)):
        return None
    owner = owner_url(app, table, partition)
    if owner is None or owner == str(app.conf.canonical_url).rstrip("/"):
        return web.json(
            {"error": f"partition {partition} is not assigned yet; try again shortly"},
            status=404,
        )
    return web.json(
        {"redirect": owner + request.path},
        status=307,
        headers={"Location": owner + str(request.url.path_qs)},
    )
