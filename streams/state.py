"""Changelog-backed tables written in whole batches, one partition at a time.

Faust picks a table write's changelog partition from the "current event". Batched agents
(`take_events`) mix partitions in one batch, so that would file state under the wrong
partition and lose it on the next rebalance. These tables take the partition from
`writing_to(partition)` instead; agents group each batch by partition and write each touched
key once per batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import faust
from faust.tables.table import Table

__all__ = ["PartitionedTable", "partitioned_table", "writing_to"]

_partition: ContextVar[int | None] = ContextVar("salewatch_table_partition", default=None)


@contextmanager
def writing_to(partition: int) -> Iterator[None]:
    token = _partition.set(partition)
    try:
        yield
    finally:
        _partition.reset(token)


class PartitionedTable(Table):  # type: ignore[misc]
    """A Faust table whose writes go to the changelog partition named by `writing_to`."""

    def partition_for_key(self, key: Any) -> int | None:
        partition = _partition.get()
        if partition is None:
            raise RuntimeError(f"table {self.name}: write outside writing_to(partition)")
        return partition


def partitioned_table(app: faust.App, name: str, partitions: int) -> PartitionedTable:
    """A table of str keys and bytes values (each module encodes its own values)."""
    table = PartitionedTable(
        app,
        name=name,
        beacon=app.tables.beacon,
        partitions=partitions,
        # key_type/value_type pick the changelog's serializers (json/raw): without them
        # Faust decodes changelog values as JSON when it restores the table
        key_type=str,
        value_type=bytes,
        schema=faust.Schema(
            key_type=str, value_type=bytes, key_serializer="json", value_serializer="raw"
        ),
    )
    return app.tables.add(table)  # type: ignore[no-any-return]
