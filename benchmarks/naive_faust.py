"""The naive baseline: how a first Faust app would do it (docs/design.md, Targets).

One agent per input topic, Faust's JSON codec, one pydantic validation and one windowed-
table update per event (`app.Table(...).tumbling(...)`). Run as
`python -m benchmarks.naive_faust worker`; it reads SALEWATCH_KAFKA_BOOTSTRAP,
SALEWATCH_TOPIC_PREFIX, SALEWATCH_APP_ID, SALEWATCH_WEB_PORT and SALEWATCH_DATA_DIR and
serves its event count on /count.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import faust
from faust.web import Request, Response, View

from streams.contract.events import TopicKind, event_adapter

app = faust.App(
    os.environ.get("SALEWATCH_APP_ID", "naive") + "-naive",
    broker="kafka://" + os.environ.get("SALEWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
    web_port=int(os.environ.get("SALEWATCH_WEB_PORT", "6067")),
    web_host="127.0.0.1",
    web_bind="127.0.0.1",
    store="memory://",
    # Faust's default is a folder in the working directory: the repository
    datadir=os.environ.get("SALEWATCH_DATA_DIR") or tempfile.mkdtemp(prefix="naive-faust-"),
    topic_partitions=4,
    value_serializer="json",
)
counts = app.Table("naive-counts", default=int).tumbling(60.0, expires=3600.0)
processed = {"events": 0}


def _make_agent(kind: TopicKind) -> None:
    adapter = event_adapter(kind)
    topic = app.topic(os.environ.get("SALEWATCH_TOPIC_PREFIX", "shop.") + kind.value)

    async def agent(stream: Any) -> None:
        async for value in stream:
            for raw in value if isinstance(value, list) else [value]:
                event = adapter.validate_python(raw)
                counts[f"{event.store_id}|{event.channel}|{event.type}"] += 1
                processed["events"] += 1

    app.agent(topic, name=f"naive-{kind.value}")(agent)


for _kind in TopicKind:
    _make_agent(_kind)


@app.page("/count")
async def count(web: View, request: Request) -> Response:
    return web.json(processed)


if __name__ == "__main__":
    app.main()
