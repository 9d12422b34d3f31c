"""How a worker's two producers send: stage 1's (aiokafka, routed events) and Faust's
(stage 2 and 3 outputs, table changelogs).

Sized to the hot path's batches: a stage-1 batch sends one message per stage-2 partition
(up to 900 KiB each), and a stage-2 batch writes every key it touched to a changelog.
No compression: lz4 on both producers cost stage 1 about 3 CPU microseconds per event
more and saved the broker about 1 (benchmarks/end_to_end.py, docs/profile.md).

Faust's own queue of changelog records stays at its default (100 before it holds the
stream back with a "producer buffer full" warning): its flush gives up after 0.1 s
without a send, with records still queued, so a longer queue lost table writes on a
SIGTERM restart (tests/integration/test_differential.py, docs/profile.md).
"""

from __future__ import annotations

__all__ = ["LINGER_MS", "MAX_BATCH_BYTES", "MAX_REQUEST_BYTES"]

LINGER_MS = 10
# per partition per request: a routed message or a batch's changelog records in one
MAX_BATCH_BYTES = 1024 * 1024
MAX_REQUEST_BYTES = 4 * 1024 * 1024
