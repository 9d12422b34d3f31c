"""Changelog-backed tables written in whole batches, one partition at a time.

Faust picks a table write's changelog partition from the "current event". Batched agents
(`take_events`) mix partitions in one batch, so that would file state under the wrong
partition and lose it on the next rebalance. These tables take the partition from
`writing_to(partition)` instead; agents group each batch by partition and write each touched
key once per batch.

Faust's RocksDB store (`SALEWATCH_STORE=rocksdb://`, one database per partition) has the
same habit: it files a write, and looks up a read, under the current event's partition.
`PartitionedRocksDBStore` writes to the `writing_to` partition and finds a key in whichever
of this worker's partition databases holds it.

`writing_to` also collects the changelog records its block sends (`Writes`): a caller whose
next step must not run ahead of the state behind it (the alert stage publishes an alert
only once its table record is in Kafka) awaits `Writes.acknowledged()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import faust
from faust.stores import rocksdb
from faust.tables.table import Table
from faust.types.stores import StoreT
from faust.types.tuples import FutureMessage
from yarl import URL

__all__ = [
    "PartitionedRocksDBStore",
    "PartitionedTable",
    "Writes",
    "partitioned_table",
    "writing_to",
]


class Writes:
    """The changelog records sent inside one `writing_to` block."""

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.sent: list[FutureMessage] = []

    async def acknowledged(self) -> None:
        """Once Kafka acknowledged every one (raises the first send's error, if any)."""
        await asyncio.gather(*self.sent)


_writes: ContextVar[Writes | None] = ContextVar("salewatch_table_writes", default=None)


def _current_writes(table_name: str) -> Writes:
    writes = _writes.get()
    if writes is None:
        raise RuntimeError(f"table {table_name}: write outside writing_to(partition)")
    return writes


@contextmanager
def writing_to(partition: int) -> Iterator[Writes]:
    writes = Writes(partition)
    token = _writes.set(writes)
    try:
        yield writes
    finally:
        _writes.reset(token)


class PartitionedTable(Table):  # type: ignore[misc]
    """A Faust table whose writes go to the changelog partition named by `writing_to`."""

    def partition_for_key(self, key: Any) -> int | None:
        return _current_writes(self.name).partition

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        sent: FutureMessage = super().send_changelog(*args, **kwargs)
        _current_writes(self.name).sent.append(sent)
        return sent

    def _new_store_by_url(self, url: str | URL) -> StoreT:
        if URL(str(url)).scheme != "rocksdb":
            return super()._new_store_by_url(url)  # type: ignore[no-any-return]
        return PartitionedRocksDBStore(
            url,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=self.options,
        )


class PartitionedRocksDBStore(rocksdb.Store):  # type: ignore[misc]
    """Faust's RocksDB store, partitioned by `writing_to` instead of the current event."""

    def _set(self, key: bytes, value: bytes | None) -> None:
        partition = _current_writes(self.table_name).partition
        self._key_index[key] = partition
        self._db_for_partition(partition).put(key, value)

    def _get(self, key: bytes) -> bytes | None:
        found = self._get_bucket_for_key(key)
        return None if found is None else found.value  # type: ignore[no-any-return]


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
