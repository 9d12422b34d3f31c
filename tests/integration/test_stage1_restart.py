"""Stage 1 started again (its process killed, or its partitions taken over) reads again from
its last commit and must judge lateness as the first read did: the truth calls an event
late against everything read before it on its input partition, including what was read
before the commit. The stage-1 loop runs here against the real broker; the test plays the
worker's end of the pipe. Stage 1 used to ask the worker for the stream time its stage 2
had heard, which lags behind stage 1's commits (nothing at all for a worker just started):
on that code this test fails, the late event routed as on time: after a kill, windows came
out over-counted."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from multiprocessing import Pipe
from multiprocessing.connection import Connection

import orjson
import pytest

from streams.ingest.process import IngestLoop, WorkerLink
from streams.runtime.settings import Settings, load_settings
from tests.support.events import make_event
from tests.support.kafka import consume, delete_topics, produce
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

WINDOW_MS, GRACE_MS = 10_000, 2_000


class WorkerEnd:
    """The worker's end of the pipe: notes each commit stage 1 reports."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.commits = 0
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            if not self.connection.poll(0.05):
                continue
            kind, _ = self.connection.recv()
            if kind == "committed":
                self.commits += 1

    def close(self) -> None:
        self._closed.set()
        self._reader.join()


async def read_and_commit_once(settings: Settings) -> None:
    """Run a stage-1 loop until it committed what it read, then stop it (SIGTERM's way)."""
    ours, theirs = Pipe()
    worker = WorkerEnd(ours)
    loop = IngestLoop(settings, WorkerLink(theirs))
    running = asyncio.create_task(loop.run())
    try:
        deadline = time.monotonic() + 60
        while worker.commits == 0:
            assert time.monotonic() < deadline, "stage 1 committed nothing in 60 s"
            assert not running.done(), running
            await asyncio.sleep(0.05)
        loop.stop()
        await asyncio.wait_for(running, 30)
    finally:
        worker.close()


def test_stage_1_started_again_judges_late_what_it_judged_late_before_its_commit(
    stack: Stack,
) -> None:
    run_id = uuid.uuid4().hex[:10]
    settings = load_settings(
        kafka_bootstrap=stack.kafka_bootstrap,
        app_id=f"salewatch-{run_id}",
        topic_prefix=f"t{run_id}.shop.",
        output_prefix=f"t{run_id}.salewatch.",
        window_ms=WINDOW_MS,
        grace_ms=GRACE_MS,
        partitions=1,
    )
    clicks = f"t{run_id}.shop.clicks"
    start = (time.time_ns() // 1_000_000 - 3_600_000) // WINDOW_MS * WINDOW_MS  # an hour ago
    ahead = make_event("click", store_id="s1", ts=start + 10 * WINDOW_MS)
    late = make_event("click", store_id="s1", ts=start)  # its window ended 10 windows before
    try:
        produce(stack.kafka_bootstrap, clicks, [orjson.dumps(ahead)], key=b"s1")
        asyncio.run(read_and_commit_once(settings))  # read `ahead`, committed after it
        produce(stack.kafka_bootstrap, clicks, [orjson.dumps(late)], key=b"s1")
        asyncio.run(read_and_commit_once(settings))  # started again from that commit

        routed = [
            event
            for record in consume(stack.kafka_bootstrap, settings.output_topic("events"), 100, 5)
            if record.value.startswith(b"[")  # events (a progress report is an object)
            for event in orjson.loads(record.value)
        ]
        by_id = {event["event_id"]: event for event in routed}
        assert set(by_id) == {ahead["event_id"], late["event_id"]}, routed
        assert by_id[late["event_id"]].get("late") is True, by_id[late["event_id"]]
    finally:
        delete_topics(stack.kafka_bootstrap, [f"t{run_id}."])
