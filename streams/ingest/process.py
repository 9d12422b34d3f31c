"""Stage 1's own process: consume the inputs, produce routed events, report progress.

Started and watched by the worker (streams/ingest/supervisor.py), which it talks to over a
pipe: it sends what it counted (the metrics live in the worker). Offsets are committed only
after Kafka acknowledged every send they led to: routed events, dead letters and progress
reports (at-least-once; stage 2 dedups). Each commit carries its partition's stream time
(`stream_time_commit`), and a partition assigned (at the start, or taken over) resumes from
it: a process that read again from a commit with less (it used to ask the worker what
stage 2 had heard, which lags) counted as on time late events the first read had judged
late, and windows came out over-counted after a kill. A progress report goes out
only once every send before it is acknowledged (in the background, while the loop reads on):
a report that arrives never speaks for an event lost on the way. A send Kafka refused is never
skipped: nothing is committed, the producer is replaced and the inputs are read again from
the last commit, with growing pauses; after the last one the process gives up and the worker
starts a new one. A closed pipe means the worker is gone, so this process stops too; so
does a process whose loop step has not ended in STEP_STUCK_S, with where each task waits in
its log (`StepWatch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from streams.contract.errors import SalewatchError
from streams.eventtime import InputProgress, input_name
from streams.ingest.ingestor import IngestCounts, Ingestor, IngestResult, encode_chunks
from streams.runtime import producing, repeated_logs
from streams.runtime.collector import freeze_startup_objects
from streams.runtime.settings import Settings
from streams.runtime.topics import METADATA_MAX_AGE_MS

__all__ = ["DeliveryFailed", "WorkerLink", "main"]

log = logging.getLogger(__name__)

REPORT_BUSY_S = 0.2  # input progress reports while reading
REPORT_IDLE_S = 1.0  # and while nothing comes in
# a small request to the broker this often: the worker's /health says whether it answers
PROBE_EVERY_S = 2.0
PROBE_TIMEOUT_S = 5.0
COMMIT_EVERY_S = 1.0  # commits wait for every send to be acknowledged: not after every batch
# aiokafka retries retriable errors itself (an idempotent producer) until a send is this old;
# a send still unanswered then counts as failed. Its own default, 40 s, failed sends held
# through a broker restart (stopped 10 s, answering again about 30 s later).
DELIVERY_TIMEOUT_S = 60.0
PRODUCER_STOP_TIMEOUT_S = 10.0
# Pauses before reading again from the last commit after failed sends, one per failure in a
# row; one failure more and the process gives up.
RETRY_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
# A step longer than this is stuck: the longest legitimate one, with the broker away, waits
# DELIVERY_TIMEOUT_S for acknowledgements and a request timeout (40 s) for a position.
STEP_STUCK_S = 120.0
STUCK_EXIT_CODE = 70  # the worker logs it and starts a new process


class DeliveryFailed(SalewatchError):
    """Sends Kafka refused or did not acknowledge; `failed` counts them by topic."""

    def __init__(self, failed: Counter[str], cause: BaseException) -> None:
        counts = ", ".join(f"{n} to {topic}" for topic, n in failed.items())
        detail = getattr(cause, "description", "") or str(cause)  # Kafka's own explanation
        super().__init__(f"sends failed ({counts}): {type(cause).__name__}: {detail}")
        self.failed = failed


class WorkerLink:
    """This process's end of the pipe to the worker. Messages are (kind, payload) tuples:
    ("counts", IngestCounts), ("lag", {topic: messages}), ("failed", {topic: failed sends}),
    ("committed", None), ("kafka", whether the broker answered the probe)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._closed = False

    def send_counts(self, counts: IngestCounts) -> None:
        self._tell("counts", counts)

    def send_lag(self, lag_by_topic: dict[str, int]) -> None:
        self._tell("lag", lag_by_topic)

    def send_failed(self, failed_by_topic: Mapping[str, int]) -> None:
        self._tell("failed", dict(failed_by_topic))

    def send_committed(self) -> None:
        self._tell("committed", None)

    def send_kafka_reachable(self, reachable: bool) -> None:
        self._tell("kafka", reachable)

    def closed_by_worker(self) -> bool:
        """True when the worker closed its end (it stopped or died)."""
        try:
            while not self._closed and self._connection.poll():
                self._connection.recv()  # the worker sends nothing; drained all the same
        except (EOFError, OSError):
            self._closed = True
        return self._closed

    def _tell(self, kind: str, payload: Any) -> bool:
        """Send unless the worker is gone (it closes the pipe when it stops): False then."""
        if not self._closed:
            try:
                self._connection.send((kind, payload))
            except OSError:  # the pipe is closed
                self._closed = True
        return not self._closed


class RoutedProducer:
    """Sends routed events, dead letters and progress reports of stage 1, and keeps each
    send until Kafka has acknowledged it."""

    def __init__(self, settings: Settings) -> None:
        self._bootstrap = settings.kafka_bootstrap
        self._security = settings.kafka_security
        self._events_topic = settings.output_topic("events")
        self._deadletter_topic = settings.output_topic("deadletter")
        self._partitions = settings.partitions
        self._pending: list[tuple[str, asyncio.Future[Any]]] = []  # (topic, delivery)
        # the next report, with the deliveries of the sends before it, and its sender
        self._next_report: tuple[list[asyncio.Future[Any]], bytes] | None = None
        self._reporting: asyncio.Task[None] | None = None
        self._producer = self._new_producer()

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            enable_idempotence=True,  # a retried send is not written twice
            request_timeout_ms=round(DELIVERY_TIMEOUT_S * 1000),
            linger_ms=producing.LINGER_MS,
            max_batch_size=producing.MAX_BATCH_BYTES,
            max_request_size=producing.MAX_REQUEST_BYTES,
            **self._security.client_options(),
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        self._next_report = None
        if self._reporting is not None:
            self._reporting.cancel()
        with contextlib.suppress(TimeoutError):  # a broker gone: do not hang on its batches
            await asyncio.wait_for(self._producer.stop(), PRODUCER_STOP_TIMEOUT_S)

    async def restart(self) -> None:
        """A new producer in place of one whose send failed: an idempotent producer keeps
        numbering its batches past a refused one, so the broker refuses every later batch of
        that partition too (OutOfOrderSequenceNumber)."""
        abandoned, self._pending = self._pending, []
        await self.stop()
        for _, future in abandoned:  # read again from the last commit: outcome irrelevant
            if future.done() and not future.cancelled():
                future.exception()
        self._producer = self._new_producer()
        await self._producer.start()

    async def forward(self, result: IngestResult) -> None:
        for partition, events in result.routed.items():
            for payload in encode_chunks(events):
                await self._send(self._events_topic, payload, partition=partition)
        for letter in result.dead_letters:
            await self._send(
                self._deadletter_topic, letter.value, key=letter.key, headers=letter.headers
            )

    def broadcast(self, report: dict[str, Any]) -> None:
        """Send `report` to every stage-2 partition once Kafka has acknowledged every send
        before it, in the background (the loop reads on meanwhile). The report speaks for
        those events: sent beside them, it could arrive when they did not (a stop or a kill
        with sends still buffered, a refused send), and stage 2 would close their windows
        without them. Reports go out in order; while one waits, a newer one replaces any
        queued behind it (it carries the same and more)."""
        self._next_report = ([future for _, future in self._pending], orjson.dumps(report))
        if self._reporting is None or self._reporting.done():
            self._reporting = asyncio.create_task(self._report())

    async def _report(self) -> None:
        while self._next_report is not None:
            before, payload = self._next_report
            self._next_report = None
            if before:
                await asyncio.wait(before)  # acknowledged() times them out, restart() ends them
            if any(future.cancelled() or future.exception() for future in before):
                continue  # read again from the last commit: a later report speaks for it
            with contextlib.suppress(DeliveryFailed):  # not sent: the next report is
                for partition in range(self._partitions):
                    await self._send(self._events_topic, payload, partition=partition)

    async def acknowledged(self) -> None:
        """Return once Kafka acknowledged every send since the last call; raise
        DeliveryFailed for those it refused or left unanswered for DELIVERY_TIMEOUT_S."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        await asyncio.wait([future for _, future in pending], timeout=DELIVERY_TIMEOUT_S)
        unanswered = TimeoutError(f"not acknowledged within {DELIVERY_TIMEOUT_S:.0f} s")
        errors = [
            (topic, future.exception() if future.done() else unanswered)
            for topic, future in pending
        ]
        failed = [(topic, error) for topic, error in errors if error is not None]
        if failed:
            # the unanswered ones settle when restart() stops their producer
            self._pending = [(topic, future) for topic, future in pending if not future.done()]
            raise DeliveryFailed(Counter(topic for topic, _ in failed), failed[0][1])

    async def _send(self, topic: str, value: bytes, **options: Any) -> None:
        try:
            delivery = await self._producer.send(topic, value, **options)
        except KafkaError as exc:  # no metadata, buffer full, record over max_request_size
            raise DeliveryFailed(Counter({topic: 1}), exc) from exc
        self._pending.append((topic, delivery))


def stream_time_commit(max_ts: int | None) -> str:
    """A commit's metadata: the partition's stream time at the committed offset ("": none)."""
    return "" if max_ts is None else str(max_ts)


def committed_stream_time(metadata: str) -> int | None:
    """The stream time `stream_time_commit` stored (None: none, or a commit without it)."""
    return int(metadata) if metadata else None


class ResumeFromCommits(ConsumerRebalanceListener):  # type: ignore[misc]
    """Input partitions assigned (at the start, or after a rebalance: every one is read
    again from its last commit) wait, paused, until the stream times stored with their
    commits are known; the loop asks for them (`resume`) before it reads on, and again after
    a failure (the broker away)."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self.waiting: set[TopicPartition] = set()
        self.rebalances = 0  # so far: a commit prepared across one is not sent

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.rebalances += 1
        self.waiting -= revoked

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.rebalances += 1
        self._consumer.pause(*assigned)
        self.waiting |= assigned

    async def resume(self, progress: InputProgress) -> None:
        waiting = self.waiting & self._consumer.assignment()
        if not waiting:  # every step asks: nothing to do but after a rebalance
            return
        try:
            # aiokafka's consumer gives the committed offset alone; its coordinator has the
            # metadata too
            committed = await self._consumer._coordinator.fetch_committed_offsets(waiting)
        except KafkaError as exc:
            log.warning("ingest: stream times of the last commits unknown yet (%s)", exc)
            return
        stream_times = {input_name(tp): committed_stream_time(c.metadata)
                        for tp, c in committed.items()}  # fmt: skip
        progress.assigned(
            (input_name(tp) for tp in waiting),
            {name: ts for name, ts in stream_times.items() if ts is not None},
        )
        self.waiting -= waiting
        self._consumer.resume(*waiting)


class StepWatch:
    """Notices a loop step that never ends (an await that never returns): it logs the
    stacks of every task, so the log says where it hung, then calls `on_stuck`."""

    def __init__(self, stuck_s: float, on_stuck: Callable[[], object]) -> None:
        self._stuck_s = stuck_s
        self._on_stuck = on_stuck
        self._began = time.monotonic()

    def began(self) -> None:
        """A step (or a recovery pause) begins: the loop is alive."""
        self._began = time.monotonic()

    async def watch_forever(self) -> None:
        while True:
            await asyncio.sleep(self._stuck_s / 10)
            took_s = time.monotonic() - self._began
            if took_s > self._stuck_s:
                log.critical(
                    "ingest: a step has not ended in %.0f s; stopping, the worker starts a new "
                    "process. Where each task waits:\n%s",
                    took_s,
                    _task_stacks(),
                )
                self._on_stuck()
                return


def _task_stacks() -> str:
    stacks = []
    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(file=out)
        stacks.append(out.getvalue())
    return "\n".join(stacks)


class IngestLoop:
    """Read, validate, route; commit what Kafka acknowledged, read again what it did not."""

    def __init__(self, settings: Settings, link: WorkerLink) -> None:
        self._settings = settings
        self._link = link
        self._ingestor = Ingestor(settings)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"{settings.app_id}-ingest",
            group_instance_id=settings.ingest_group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Small per-partition fetches: aiokafka hands out one partition's buffer before
            # the next, so big ones would let one topic run far ahead of the others.
            max_partition_fetch_bytes=256 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
            metadata_max_age_ms=METADATA_MAX_AGE_MS,  # input topics created after start
            **settings.kafka_security.client_options(),
        )
        self._resuming = ResumeFromCommits(self._consumer)
        self._consumer.subscribe(self._ingestor.topic_names, listener=self._resuming)
        self._output = RoutedProducer(settings)
        self._progress = InputProgress(self._consumer, settings.idle_ms)
        # What the batches read since the last commit counted: reported once acknowledged,
        # so a batch read again is counted once. Empty: nothing to commit.
        self._counts: list[IngestCounts] = []
        self._failures = 0  # failed deliveries since the last commit
        self._last_report = self._last_commit = 0.0
        self._stopping = False
        # exits at once: what was read since the last commit is read again, as after a kill
        self._watch = StepWatch(STEP_STUCK_S, lambda: os._exit(STUCK_EXIT_CODE))

    def stop(self) -> None:
        """Finish the step under way, then close: the producer sends what it still holds."""
        self._stopping = True

    async def run(self) -> None:
        await self._output.start()
        await self._consumer.start()
        log.info("ingest: reading %s", ", ".join(self._ingestor.topic_names))
        # beside the loop, which may wait up to DELIVERY_TIMEOUT_S for acknowledgements
        probe = asyncio.create_task(self._probe_forever())
        watch = asyncio.create_task(self._watch.watch_forever())
        try:
            while not self._stopping and not self._link.closed_by_worker():
                self._watch.began()
                try:
                    await self._step()
                except DeliveryFailed as failure:
                    await self._recover(failure)
        finally:
            probe.cancel()
            watch.cancel()
            await self._consumer.stop()
            await self._output.stop()

    async def _step(self) -> None:
        settings, consumer, progress = self._settings, self._consumer, self._progress
        await self._resuming.resume(progress)
        consumed = await consumer.getmany(
            timeout_ms=settings.batch_within_ms, max_records=settings.batch_max_messages
        )
        if consumed:
            result = self._ingestor.process(
                (r for records in consumed.values() for r in records), progress.max_ts
            )
            progress.observe(result.max_ts, consumed)
            await self._output.forward(result)
            self._counts.append(result.counts)
        now = time.monotonic()
        if now - self._last_report >= (REPORT_BUSY_S if consumed else REPORT_IDLE_S):
            with contextlib.suppress(IllegalStateError):  # rebalancing: next round
                report, lag_by_topic = await progress.report()
                self._output.broadcast(report)
                self._link.send_lag(lag_by_topic)
            self._last_report = now
        if now - self._last_commit >= COMMIT_EVERY_S:
            await self._commit()
            self._last_commit = now

    async def _probe_forever(self) -> None:
        while True:
            self._link.send_kafka_reachable(await self._broker_answers())
            await asyncio.sleep(PROBE_EVERY_S)

    async def _broker_answers(self) -> bool:
        """One ListOffsets request (or metadata before any assignment), bounded in time."""
        assignment = self._consumer.assignment()
        request = (
            self._consumer.end_offsets([min(assignment)]) if assignment else self._consumer.topics()
        )
        try:
            await asyncio.wait_for(request, PROBE_TIMEOUT_S)
        except (KafkaError, TimeoutError):
            return False
        return True

    async def _commit(self) -> None:
        """Commit what was read, once everything sent since the last commit is acknowledged."""
        await self._output.acknowledged()
        if not self._counts:
            return
        for counts in self._counts:
            self._link.send_counts(counts)
        self._counts.clear()
        try:
            await self._consumer.commit(await self._offsets_with_stream_time())
            self._progress.checkpoint()
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance took partitions away meanwhile: their new owner reads again from the
            # last commit and stage 2 drops the repeats as duplicates.
            log.info("ingest: commit after rebalance skipped (%s)", exc)
        self._failures = 0
        self._link.send_committed()

    async def _offsets_with_stream_time(self) -> dict[TopicPartition, tuple[int, str]]:
        """What was read of each input partition, with its stream time there as the commit's
        metadata; not the partitions still waiting for theirs (it would be lost). A position
        may take a wait (a partition not fetched yet); a rebalance meanwhile moves positions
        back to the last commit while the stream times stay, and that commit would store a
        stream time ahead of its offset (the events after it judged late when read again):
        IllegalStateError then, nothing committed."""
        consumer, max_ts, rebalances = self._consumer, self._progress.max_ts, self._resuming
        before = rebalances.rebalances
        offsets = {
            tp: (await consumer.position(tp), stream_time_commit(max_ts.get(input_name(tp))))
            for tp in consumer.assignment() - rebalances.waiting
        }
        if rebalances.rebalances != before:
            raise IllegalStateError("a rebalance while the commit was prepared")
        return offsets

    async def _recover(self, failure: DeliveryFailed) -> None:
        """After failed sends: nothing read since the last commit is committed or counted.
        Pause, replace the producer and read again from the last commit; a producer that
        cannot start (the broker still away) is one more pause. Give up (raise) after
        len(RETRY_BACKOFF_S) pauses."""
        self._link.send_failed(failure.failed)
        self._counts.clear()
        problem: Exception = failure
        while True:
            if self._failures == len(RETRY_BACKOFF_S):
                log.critical("ingest: %s; giving up after %d attempts", problem, self._failures + 1)
                raise problem
            pause_s = RETRY_BACKOFF_S[self._failures]
            self._failures += 1
            log.error(
                "ingest: %s; nothing committed, reading again from the last commit in %.0f s",
                problem,
                pause_s,
            )
            await asyncio.sleep(pause_s)
            self._watch.began()
            try:
                await self._output.restart()
                break
            except KafkaError as exc:  # the broker still away: a new producer cannot start
                problem = exc
        self._progress.rewind()
        for tp in self._consumer.assignment():
            # taken away meanwhile: its new owner reads from the last commit anyway
            with contextlib.suppress(IllegalStateError):
                offset = await self._consumer.committed(tp)
                if offset is None:  # never committed: auto_offset_reset="earliest"
                    await self._consumer.seek_to_beginning(tp)
                else:
                    self._consumer.seek(tp, offset)


def main(settings: Settings, connection: Connection, log_level: int) -> None:
    """Entry point of the process (multiprocessing target)."""
    logging.basicConfig(level=log_level, format="[%(asctime)s] [%(process)d] %(message)s")
    repeated_logs.install()
    producing.install()
    link = WorkerLink(connection)
    freeze_startup_objects()

    async def until_stopped() -> None:
        ingest = IngestLoop(settings, link)
        # Not a cancel: the worker closes the pipe and then sends SIGTERM, and a cancel would
        # cut the producer's stop short, dropping the sends it still buffers.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, ingest.stop)
        await ingest.run()

    asyncio.run(until_stopped())
