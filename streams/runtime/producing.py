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

`install()` changes two things, in each process that sends:
- Faust's producer is idempotent, as stage 1's is: a send retried after a lost answer (a
  broker restart, a dropped connection) is written once. Faust turns idempotence on only
  for its transactions, which salewatch does not use (docs/architecture.md, "After a
  crash"); without it a retried stage-3 send would put a window on the windows topic twice.
- The Kafka client keeps the metadata of every topic it sent to. aiokafka asks the broker
  for all topics until its first send to a topic it does not know yet, and from then on
  only for the topics it was asked to add. A record for a topic it knew from an
  all-topics answer (never added) then loses its partition leader at the next metadata
  answer and waits in the client until it expires (Faust: after 20 minutes), and so does
  every flush. Seen as an alert's state write that never reached its changelog: the
  stage-3 table write went out, the alert's did not, a SIGTERM's flush hung until the
  worker was killed and its successor fired the alert again (tests/integration/
  test_alerts_stock.py, one CI run in four); tests/integration/test_producing.py shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from faust.transport.drivers.aiokafka import Producer

from streams.runtime.settings import Settings

__all__ = [
    "LINGER_MS",
    "MAX_BATCH_BYTES",
    "MAX_REQUEST_BYTES",
    "changelog_buffer_messages",
    "install",
]

LINGER_MS = 10
# per partition per request: a routed message or a batch's changelog records in one
MAX_BATCH_BYTES = 1024 * 1024
MAX_REQUEST_BYTES = 4 * 1024 * 1024


def changelog_buffer_messages(settings: Settings) -> int:
    """Records Faust may queue before it holds the stream back: ten per message of a full
    stage batch (20,000 at the default 2,000; queues of up to 7,651 records were seen), so
    the stream waits only when the producer falls a batch or more behind."""
    return max(100, settings.batch_max_messages * 10)


_faust_settings_extra = Producer._settings_extra


def _idempotent(self: Producer) -> Mapping[str, Any]:
    return {"acks": "all", "enable_idempotence": True}


_aiokafka_send = AIOKafkaProducer.send


async def _send_keeping_topic(self: AIOKafkaProducer, topic: str, *args: Any, **kwargs: Any) -> Any:
    if topic not in self.client._topics:
        self.client.add_topic(topic)  # its metadata from the next answer on (asked for now)
    return await _aiokafka_send(self, topic, *args, **kwargs)


def install() -> None:
    """Idempotent; before a producer starts (the worker's and stage 1's processes)."""
    Producer._settings_extra = _idempotent  # type: ignore[method-assign]
    AIOKafkaProducer.send = _send_keeping_topic  # type: ignore[method-assign]
