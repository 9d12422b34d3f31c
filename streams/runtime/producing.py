"""How a worker's two producers send: stage 1's (aiokafka, routed events) and Faust's
(stage 2 and 3 outputs, table changelogs).

Sized to the hot path's batches: a stage-1 batch sends one message per stage-2 partition
(up to 900 KiB each), and a stage-2 batch writes every key it touched to a changelog.
No compression: lz4 on both producers cost stage 1 about 3 CPU microseconds per event
more and saved the broker about 1 (benchmarks/end_to_end.py, docs/profile.md).

Faust's own queue of records not yet handed to the Kafka client (table changelogs, stage
3's outputs) holds the stream back past its limit, with a "producer buffer full" warning,
until as many records as the limit went out, waiting for each. Its default limit, 100, is
less than one stage-2 batch writes (every key it touched: thousands of SKUs), so nearly
every batch stalled. The limit is sized to the batch instead. A longer queue is safe
because Faust's flush, before every commit, before partitions move and at a stop, waits for
every record queued before it (streams/runtime/flush_barrier.py): its own gives up after
0.1 s without a send, which with this limit once lost table writes on a SIGTERM restart
(tests/integration/test_differential.py, docs/profile.md).
"""

from __future__ import annotations

from streams.runtime.settings import Settings

__all__ = ["LINGER_MS", "MAX_BATCH_BYTES", "MAX_REQUEST_BYTES", "changelog_buffer_messages"]

LINGER_MS = 10
# per partition per request: a routed message or a batch's changelog records in one
MAX_BATCH_BYTES = 1024 * 1024
MAX_REQUEST_BYTES = 4 * 1024 * 1024


def changelog_buffer_messages(settings: Settings) -> int:
    """Records Faust may queue before it holds the stream back: ten per message of a full
    stage batch (20,000 at the default 2,000; queues of up to 7,651 records were seen), so
    the stream waits only when the producer falls a batch or more behind."""
    return max(100, settings.batch_max_messages * 10)
