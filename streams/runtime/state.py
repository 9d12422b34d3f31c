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

`DirectTable` sends each write's changelog record to the Kafka client at once, instead of
queueing it behind every record the stages queued before (stage 2's batches: thousands),
and returns the send: for state whose next step must wait until it is in Kafka (the alert
outbox, alerts/stage.py), at the cost of one acknowledgement, not a queue.
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
    "DirectTable",
    "PartitionedRocksDBStore",
    "PartitionedTable",
    "direct_table",
    "partitioned_table",
    "writing_to",
]

_partition: ContextVar[int | None] = ContextVar("salewatch_table_partition", default=None)


def _current_partition(table_name: str) -> int:
    partition = _partition.get()
    if partition is None:
        raise RuntimeError(f"table {table_name}: write outside writing_to(partition)")
    return partition


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
        return _current_partition(self.name)

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


class DirectTable(PartitionedTable):
    """A partitioned table written only with `put`: each write's changelog record goes to
    the Kafka client at once. Faust's flush before a commit covers these too (its client
    flush waits for them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Writes reach the client in the order they were made: a later one handed over
        # first (an earlier one waiting on the client) would be undone on restore.
        self._in_order = asyncio.Lock()

    def on_key_set(self, key: Any, value: Any) -> None:
        raise TypeError(f"table {self.name}: write with put(), not through Faust's queue")

    on_key_del = on_key_set

    async def put(self, partition: int, key: str, value: bytes | None) -> FutureMessage:
        """Set `key` (delete it: `value` None) in `partition`; the send is done once Kafka
        acknowledged it."""
        async with self._in_order:
            with writing_to(partition):
                if value is None:
                    self.data.pop(key, None)
                else:
                    self.data[key] = value
            sent: FutureMessage = await self.changelog_topic.send(
                key=key,
                value=value,
                partition=partition,
                key_serializer=self.key_serializer,
                value_serializer=self.value_serializer if value is not None else "raw",
                callback=self._on_changelog_sent,
            )
            return sent


class PartitionedRocksDBStore(rocksdb.Store):  # type: ignore[misc]
    """Faust's RocksDB store, partitioned by `writing_to` instead of the current event."""

    def _set(self, key: bytes, value: bytes | None) -> None:
        partition = _current_partition(self.table_name)
        self._key_index[key] = partition
        self._db_for_partition(partition).put(key, value)

    def _get(self, key: bytes) -> bytes | None:
        found = self._get_bucket_for_key(key)
        return None if found is None else found.value  # type: ignore[no-any-return]


def partitioned_table(
    app: faust.App, name: str, partitions: int, kind: type[PartitionedTable] = PartitionedTable
) -> PartitionedTable:
    """A table of str keys and bytes values (each module encodes its own values)."""
    table = kind(
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


def direct_table(app: faust.App, name: str, partitions: int) -> DirectTable:
    table = partitioned_table(app, name, partitions, DirectTable)
    assert isinstance(table, DirectTable)
    return table
