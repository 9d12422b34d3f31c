"""`StoreClient`: what a store links to send contract events to salewatch's Kafka topics.

    with StoreClient("kafka:9092") as client:
        client.click(store_id="s1", channel="app", user_id="u1", sku="sku-1")
        client.emit(OrderPaid(...))            # any model of streams.contract.events
        client.send("restock", store_id="s1", channel="app", sku="sku-1", qty=50)

Events are validated before anything is sent (InvalidEventError), batched per input topic
and store into JSON-array messages within the contract limits, keyed by `store_id`, and
sent by an idempotent kafka-python producer. Delivery failures surface as DeliveryError
from the next `flush()` or `close()`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from types import TracebackType
from typing import Any, Protocol, Self

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError

from sdk.batching import DEFAULT_BATCH_BYTES, Batch, Batcher
from sdk.errors import ClientClosedError, DeliveryError, SdkError
from sdk.privacy import Pseudonymiser
from sdk.validation import EVENT_TYPES, EventValidator
from streams.contract.decoding import MAX_BATCH_EVENTS, MAX_MESSAGE_BYTES
from streams.contract.events import DEFAULT_MAX_FUTURE_MS, EventBase, TopicKind
from streams.contract.kafka_security import KafkaSecurity
from streams.contract.routing import normalise

__all__ = ["PRODUCER_DEFAULTS", "DeliveryStats", "StoreClient"]

log = logging.getLogger(__name__)

# Idempotent producer (kafka-python >= 2.1 supports it): acks from all in-sync replicas,
# retries until delivery_timeout_ms, at most 5 requests in flight (the most that keeps
# per-partition order with idempotence). Our batches are already large messages, so the
# producer's own linger is short. Any of these can be overridden in StoreClient(**...).
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "retries": 2**31 - 1,
    "max_in_flight_requests_per_connection": 5,
    "delivery_timeout_ms": 120_000,
    "linger_ms": 5,
    "max_request_size": MAX_MESSAGE_BYTES + 64 * 1024,  # one full batch plus record overhead
    "client_id": "salewatch-sdk",
}


class SendFuture(Protocol):
    def add_callback(self, f: Callable[..., Any], *args: Any) -> Any: ...
    def add_errback(self, f: Callable[..., Any], *args: Any) -> Any: ...


class Producer(Protocol):
    """The part of kafka-python's KafkaProducer the client uses."""

    def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> SendFuture: ...
    def flush(self, timeout: float | None = None) -> None: ...
    def close(self, timeout: float | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    """Acknowledged and failed messages and events since the client started."""

    messages_sent: int = 0
    events_sent: int = 0
    messages_failed: int = 0
    events_failed: int = 0


class StoreClient:
    """Thread-safe; one per process is enough. Use as a context manager or call close()."""

    def __init__(
        self,
        bootstrap: str,
        topic_prefix: str = "shop.",
        *,
        linger_ms: int = 20,
        max_batch_events: int = MAX_BATCH_EVENTS,
        max_batch_bytes: int = DEFAULT_BATCH_BYTES,
        max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
        security: KafkaSecurity | None = None,
        pseudonymiser: Pseudonymiser | None = None,
        producer_factory: Callable[..., Producer] = KafkaProducer,
        **producer_overrides: Any,
    ) -> None:
        self._batcher = Batcher(max_batch_events, max_batch_bytes, linger_ms)
        self._validator = EventValidator(max_future_ms)
        self._pseudonymiser = pseudonymiser  # user_id -> keyed pseudonym before sending
        self._topics = {kind: f"{topic_prefix}{kind.value}" for kind in TopicKind}
        security = security or KafkaSecurity()
        config = {**PRODUCER_DEFAULTS, **security.client_options(), **producer_overrides}
        try:
            self._producer = producer_factory(bootstrap_servers=bootstrap, **config)
        except KafkaError as exc:
            raise SdkError(f"cannot start a Kafka producer for {bootstrap}: {exc!r}") from exc
        self._wake = threading.Condition()  # guards the batcher and `_closed`
        self._closed = False
        self._stats_lock = threading.Lock()  # delivery callbacks run on the producer's thread
        self._stats = DeliveryStats()
        # failed messages and events not yet raised by flush(), and the first cause
        self._unreported: tuple[int, int, BaseException] | None = None
        self._linger = threading.Thread(target=self._linger_loop, name="salewatch-sdk-linger")
        self._linger.daemon = True
        self._linger.start()

    # --- building and sending events --------------------------------------------------
    def emit(
        self, event: EventBase | Mapping[str, Any], topic: TopicKind | str | None = None
    ) -> EventBase:
        """Validate and queue one complete event (a model of streams.contract.events or a dict).

        `topic` forces the input topic (default: the topic of the event's `type`); an event
        whose type does not belong to it is refused. Returns the event as sent (validated,
        `user_id` pseudonymised when the client has a key).
        """
        forced = None if topic is None else TopicKind(topic)
        kind, validated = self._validator.validate(event, forced)
        return self._enqueue(kind, validated)

    def send(self, event_type: str, /, **fields: Any) -> EventBase:
        """Build an event of `event_type` from keyword fields (event_id and ts filled in when
        missing), validate and queue it. Returns the event as sent."""
        kind, validated = self._validator.build(event_type, **fields)
        return self._enqueue(kind, validated)

    def __getattr__(self, name: str) -> Callable[..., EventBase]:
        """`client.click(...)`, `client.order_paid(...)`, ...: `send` for every event type."""
        if name in EVENT_TYPES:
            return partial(self.send, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *EVENT_TYPES})

    def _enqueue(self, kind: TopicKind, event: EventBase) -> EventBase:
        user_id = getattr(event, "user_id", None)
        if self._pseudonymiser is not None and user_id is not None:
            event = event.model_copy(update={"user_id": self._pseudonymiser.user_id(user_id)})
        encoded = orjson.dumps(normalise(event))
        with self._wake:
            if self._closed:
                raise ClientClosedError("the StoreClient is closed")
            complete = self._batcher.add(kind, event.store_id, encoded)
            for batch in complete:
                self._send(batch)
            self._wake.notify()
        return event

    # --- delivery -------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> None:
        """Send every queued event and wait for Kafka's acknowledgements.

        Raises DeliveryError when any message failed since the last flush.
        """
        with self._wake:
            if self._closed:
                raise ClientClosedError("the StoreClient is closed")
        self._flush(timeout)

    def _flush(self, timeout: float | None) -> None:
        with self._wake:
            for batch in self._batcher.drain():
                self._send(batch)
        self._producer.flush(timeout)
        with self._stats_lock:
            unreported, self._unreported = self._unreported, None
        if unreported is not None:
            messages, events, cause = unreported
            raise DeliveryError(messages, events, cause) from cause

    def close(self, timeout: float | None = None) -> None:
        """Flush, stop the linger thread and close the producer; safe to call twice."""
        with self._wake:
            if self._closed:
                return
            self._closed = True
            self._wake.notify()
        self._linger.join()
        try:
            self._flush(timeout)
        finally:
            self._producer.close(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def stats(self) -> DeliveryStats:
        with self._stats_lock:
            return self._stats

    @property
    def pending_events(self) -> int:
        """Events queued in batches not yet handed to the producer."""
        with self._wake:
            return len(self._batcher)

    def topic_name(self, kind: TopicKind | str) -> str:
        return self._topics[TopicKind(kind)]

    def _send(self, batch: Batch) -> None:
        """Hand one batch to the producer; the caller holds `_wake`."""
        events = len(batch.events)
        try:
            future = self._producer.send(self._topics[batch.kind], value=batch.value, key=batch.key)
        except KafkaError as exc:
            self._failed(events, exc)
            return
        future.add_callback(self._delivered, events)
        future.add_errback(self._failed, events)

    def _delivered(self, events: int, _metadata: object) -> None:
        with self._stats_lock:
            s = self._stats
            self._stats = replace(
                s, messages_sent=s.messages_sent + 1, events_sent=s.events_sent + events
            )

    def _failed(self, events: int, exc: BaseException) -> None:
        log.error("salewatch SDK: a message of %d events was not delivered: %r", events, exc)
        with self._stats_lock:
            s = self._stats
            self._stats = replace(
                s, messages_failed=s.messages_failed + 1, events_failed=s.events_failed + events
            )
            messages, failed_events, cause = self._unreported or (0, 0, exc)
            self._unreported = (messages + 1, failed_events + events, cause)

    def _linger_loop(self) -> None:
        with self._wake:
            while not self._closed:
                wait_ms = self._batcher.next_due_in_ms()
                if wait_ms is None or wait_ms > 0:
                    self._wake.wait(None if wait_ms is None else wait_ms / 1000)
                    continue
                for batch in self._batcher.due():
                    self._send(batch)
