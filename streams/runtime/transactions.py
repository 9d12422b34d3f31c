"""Exactly-once inside the worker: Kafka transactions that hold whole batches.

Faust's `processing_guarantee="exactly_once"` keeps one transactional producer per
assigned partition number (all our internal topics and changelogs are co-partitioned, so
one per partition) and commits a partition's input offsets in its transaction. Two habits
of Faust's transaction manager break a batch apart, and this subclass changes them:

- it files a send under the transaction of the partition the record goes TO. A stage-2
  batch of partition p sends partials and stock changes to every partition q: filed under
  q, they would commit with q's offsets, not with p's table writes (a kill in between
  leaves half the batch). Here a send made inside `sending_for(p)` joins p's transaction;
  the changelog records Faust's buffer sends later go to partition p of the changelog
  (`writing_to`), which is p's transaction too;
- it commits whenever its timer fires, also halfway through a batch that is awaiting its
  sends, and without emptying Faust's buffer of changelog records. Here a commit waits for
  the batch gate (`stage.batch_gate`, held by every batch and tick), then drains the buffer.

It also commits a transaction that has sends but no new input offsets (a clock tick that
closed windows on a quiet partition), which Faust would leave open: its records stay
invisible to `read_committed` consumers until a commit. A record for a partition whose
transaction has ended (the worker stops, the partition moves) is not sent at all: sent
outside a transaction it would be visible while the batch's input offsets are not
committed, and the batch read again would write it twice or, with its dedup record
visible and its outputs not, never.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from weakref import WeakKeyDictionary

import faust
from aiokafka.errors import ProducerFenced
from faust.transport.consumer import TransactionManager
from faust.types import TP
from faust.types.tuples import RecordMetadata
from mode import Service

from streams.runtime.stage import batch_gate, drain

__all__ = ["BatchTransactions", "install", "sending_for"]

log = logging.getLogger(__name__)

_source: ContextVar[TP | None] = ContextVar("salewatch_transaction_source", default=None)


@contextmanager
def sending_for(tp: TP) -> Iterator[None]:
    """Sends made inside join the transaction of input partition `tp`."""
    token = _source.set(tp)
    try:
        yield
    finally:
        _source.reset(token)


class HandOver:
    """Counts the records Faust's buffer took from its queue and has not yet handed to their
    producer: the queue is empty while one is on its way (awaiting the producer, or room in
    its accumulator), and a commit then would put it in the next transaction."""

    def __init__(self) -> None:
        self._in_flight = 0
        self._done = asyncio.Event()
        self._done.set()

    def wrap(self, send: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        async def counted(fut: Any) -> None:
            self._in_flight += 1  # before the first await: the queue no longer holds it
            self._done.clear()
            try:
                await send(fut)
            finally:
                self._in_flight -= 1
                if not self._in_flight:
                    self._done.set()

        return counted

    async def wait(self) -> None:
        await self._done.wait()


_hand_overs: WeakKeyDictionary[faust.App, HandOver] = WeakKeyDictionary()


def install(app: faust.App) -> None:
    """Use `BatchTransactions` for this app's exactly-once processing."""
    app.transport.TransactionManager = BatchTransactions
    buffer = app.producer.buffer
    hand_over = _hand_overs[app] = HandOver()
    buffer._send_pending = hand_over.wrap(buffer._send_pending)


class BatchTransactions(TransactionManager):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[str] = set()  # transactions with sends since their last commit

    def _transaction_of(self, tp: TP) -> str | None:
        """The transactional id of a partition of ours (an internal topic or changelog);
        None: not one (an input topic HTTP ingest writes to, an output no stage reads)."""
        try:
            group = self.app.assignor.group_for_topic(tp.topic)
        except KeyError:
            return None
        return f"{self.app.conf.id}-{group}-{tp.partition}"

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[RecordMetadata]:
        p = self.consumer.key_partition(topic, key, partition)
        # a changelog record from Faust's buffer goes to its batch's partition (`writing_to`)
        source = _source.get() or (TP(topic, p) if p is not None else None)
        tid = self._transaction_of(source) if source is not None else None
        if tid is not None and not self._is_open(tid):
            # its transaction ended (the worker stops, or the partition moves): whatever the
            # batch did is read again from the committed offsets, so none of it may go out
            log.debug("transactions: %s has no open transaction, not sent to %s", source, topic)
            return asyncio.get_running_loop().create_future()
        if tid is None:
            return await self.producer.send(  # type: ignore[no-any-return]
                topic, key, value, p, timestamp, headers
            )
        self._open.add(tid)
        return await self.producer.send(  # type: ignore[no-any-return]
            topic, key, value, p, timestamp, headers, transactional_id=tid
        )

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        async with batch_gate(self.app):
            # the changelog records of the batches before the gate: queued in Faust's buffer,
            # or taken from it and still waiting for room in their producer
            await drain(self.app)
            if self.app.producer.buffer.size:  # drain gave up: commit them with a later batch
                return False
            await _hand_overs[self.app].wait()
            by_tid: dict[str, dict[TP, int]] = defaultdict(dict)
            for tp, offset in offsets.items():
                tid = self._transaction_of(tp)
                if tid is not None:
                    by_tid[tid][tp] = offset
            open_tids = self._open | set(by_tid)
            self._open = set()
            try:  # together: each is a few round trips to the broker, and batches wait
                await asyncio.gather(*(
                    self._commit_one(tid, by_tid.get(tid, {}), start_new_transaction)
                    for tid in sorted(open_tids) if self._is_open(tid)
                ))  # fmt: skip
            except ProducerFenced as exc:  # another worker owns the partition now
                await self.app.crash(exc)
        return True

    def _is_open(self, tid: str) -> bool:
        producer = self.producer._transaction_producers.get(tid)
        return producer is not None and bool(producer._txn_manager.is_in_transaction())

    async def _commit_one(self, tid: str, offsets: Mapping[TP, int], start_new: bool) -> None:
        producer = self.producer._transaction_producers[tid]
        async with self.producer._trn_locks[tid]:
            if offsets:
                await producer.send_offsets_to_transaction(offsets, self.app.conf.id)
            await producer.commit_transaction()
            if start_new:
                await producer.begin_transaction()

    @Service.task
    async def _commit_without_offsets(self) -> None:
        """Faust commits only when input offsets moved: commit the sends of quiet
        partitions too, or their readers wait for them until the next input arrives."""
        interval = self.app.conf.broker_commit_interval
        while not self.should_stop:
            await self.sleep(interval)
            if self._open:
                await self.commit({})
