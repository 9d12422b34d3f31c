"""Stage 1 -> stage 2 routing by event content (docs/architecture.md).

Producers may key their messages by store, user, anything or nothing. The pipeline re-keys
every valid event by what it is about, so every copy of an event and every event of one
order meet in one partition, and a flagship store spreads over all partitions.
"""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel

from streams.contract.events import EventBase

__all__ = [
    "encode_json",
    "fields_of",
    "merge_partition",
    "normalise",
    "partition_for",
    "routing_key",
]

_STOCK_TYPES = frozenset({"stock_snapshot", "restock", "stock_adjust"})


def routing_key(event: dict[str, Any]) -> str:
    """The key of a normalised event (reading a dict is much faster than model attributes)."""
    order_id = event.get("order_id")
    if order_id is not None:
        return f"o|{event['store_id']}|{order_id}"
    if event["type"] in _STOCK_TYPES:
        return f"s|{event['store_id']}|{event['sku']}"
    return f"e|{event['store_id']}|{event['event_id']}"


def partition_for(key: str, partitions: int) -> int:
    """Stable across processes and restarts (unlike hash())."""
    return zlib.crc32(key.encode()) % partitions


def normalise(event: EventBase) -> dict[str, Any]:
    """The internal form: JSON types only, `ts` in epoch ms, money as decimal strings."""
    return event.model_dump(mode="json", exclude_none=True)


def fields_of(event: BaseModel) -> dict[str, Any]:
    """The routed form inside the pipeline: the validated fields that are set, as they are.

    Five times cheaper than `normalise` on the hot path; `encode_json` writes the values
    JSON has no type for (money, order lines) the way `normalise` would.
    """
    return {name: value for name, value in event.__dict__.items() if value is not None}


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, BaseModel):
        return fields_of(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_json(value: Any) -> bytes:
    """JSON of routed events (see `fields_of`)."""
    return orjson.dumps(value, default=_json_default)


def merge_partition(store_id: str, partitions: int) -> int:
    """Stage 3 is partitioned by store, so store-level detectors see all its channels.
    Its input is one small record per closed partial window: no hot-key risk."""
    return partition_for(store_id, partitions)
