"""The store SDK without a broker: builders, validation, batching limits, delivery, lifecycle."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from sdk import EVENT_TYPES, InvalidEventError, Pseudonymiser, StoreClient
from sdk.batching import Batcher
from sdk.client import PRODUCER_DEFAULTS
from sdk.errors import ClientClosedError, DeliveryError
from streams.contract.decoding import (
    MAX_BATCH_EVENTS,
    MAX_MESSAGE_BYTES,
    MessageDecoder,
    RejectReason,
)
from streams.contract.errors import ConfigError, SalewatchError
from streams.contract.events import Click, TopicKind
from tests.support.events import TOPIC_OF_TYPE, make_event


class FakeFuture:
    def __init__(self) -> None:
        self.callbacks: list[Callable[[Any], Any]] = []
        self.errbacks: list[Callable[[BaseException], Any]] = []

    def add_callback(self, f: Callable[..., Any], *args: Any) -> FakeFuture:
        self.callbacks.append(lambda value: f(*args, value))
        return self

    def add_errback(self, f: Callable[..., Any], *args: Any) -> FakeFuture:
        self.errbacks.append(lambda exc: f(*args, exc))
        return self


class FakeProducer:
    """Records sends; flush() acknowledges them, or fails them when `fail_with` is set."""

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.pending: list[FakeFuture] = []
        self.fail_with: BaseException | None = None
        self.closed = False

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> FakeFuture:
        assert value is not None
        self.sent.append((topic, key, value))
        future = FakeFuture()
        self.pending.append(future)
        return future

    def flush(self, timeout: float | None = None) -> None:
        pending, self.pending = self.pending, []
        for future in pending:
            if self.fail_with is None:
                for callback in future.callbacks:
                    callback(object())
            else:
                for errback in future.errbacks:
                    errback(self.fail_with)

    def close(self, timeout: float | None = None) -> None:
        self.closed = True

    def messages(self) -> list[tuple[str, bytes | None, list[dict[str, Any]]]]:
        return [(topic, key, orjson.loads(value)) for topic, key, value in self.sent]


@pytest.fixture
def make_client() -> Iterator[Callable[..., tuple[StoreClient, FakeProducer]]]:
    clients: list[StoreClient] = []

    def make(**options: Any) -> tuple[StoreClient, FakeProducer]:
        producers: list[FakeProducer] = []

        def factory(**config: Any) -> FakeProducer:
            producers.append(FakeProducer(**config))
            return producers[0]

        options.setdefault("linger_ms", 60_000)  # batches leave on size or flush only
        client = StoreClient("kafka:9092", producer_factory=factory, **options)
        clients.append(client)
        return client, producers[0]

    yield make
    for client in clients:
        client.close()


# --- builders and validation ----------------------------------------------------------------
def test_typed_builder_fills_event_id_and_ts(make_client: Callable[..., Any]) -> None:
    client, producer = make_client()
    before = time.time_ns() // 1_000_000
    click = client.click(store_id="s1", channel="app", user_id="u1", sku="sku-9")
    assert isinstance(click, Click)
    assert len(click.event_id) == 32
    assert before <= click.ts <= time.time_ns() // 1_000_000
    client.flush()
    [(topic, key, events)] = producer.messages()
    assert (topic, key) == ("shop.clicks", b"s1")
    assert events == [
        {
            "event_id": click.event_id,
            "type": "click",
            "ts": click.ts,
            "store_id": "s1",
            "channel": "app",
            "user_id": "u1",
            "sku": "sku-9",
        }
    ]


def test_a_builder_for_every_event_type_and_nothing_else(make_client: Callable[..., Any]) -> None:
    client, producer = make_client()
    assert set(EVENT_TYPES) == set(TOPIC_OF_TYPE)
    assert set(EVENT_TYPES) <= set(dir(client))
    for event_type in EVENT_TYPES:
        fields = make_event(event_type)
        del fields["type"], fields["event_id"], fields["ts"]
        assert getattr(client, event_type)(**fields).type == event_type  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        client.no_such_event  # noqa: B018
    client.flush()
    by_topic = {topic: [e["type"] for e in events] for topic, _, events in producer.messages()}
    expected: dict[str, list[str]] = {}
    for event_type in EVENT_TYPES:
        expected.setdefault(f"shop.{TOPIC_OF_TYPE[event_type]}", []).append(event_type)
    assert by_topic == expected


def test_given_event_id_and_aware_datetime_ts_are_kept(make_client: Callable[..., Any]) -> None:
    client, _ = make_client()
    ts = datetime(2026, 11, 11, 0, 0, 3, 120_000, tzinfo=UTC)
    event = client.send(
        "restock", store_id="s1", channel="app", sku="k", qty=5, event_id="mine-1", ts=ts
    )
    assert (event.event_id, event.ts) == ("mine-1", int(ts.timestamp() * 1000))


def test_emit_takes_dicts_and_models_of_every_type(make_client: Callable[..., Any]) -> None:
    client, producer = make_client()
    events = [make_event(event_type) for event_type in EVENT_TYPES]
    for event in events:
        client.emit(event)
    client.emit(Click.model_validate(make_event("click", event_id="as-model")))
    client.flush()
    sent_ids = {e["event_id"] for _, _, batch in producer.messages() for e in batch}
    assert sent_ids == {e["event_id"] for e in events} | {"as-model"}


@pytest.mark.parametrize(
    ("event", "topic", "reason", "detail"),
    [
        (make_event("click", channel="NOT OK"), None, RejectReason.INVALID_FIELD, "channel"),
        (make_event("click", user_id=None), None, RejectReason.INVALID_FIELD, "user_id"),
        (make_event("cart_add", qty="5"), None, RejectReason.INVALID_FIELD, "qty"),
        (make_event("stock_adjust", delta=0), None, RejectReason.INVALID_FIELD, "delta"),
        (make_event("click", type="teleport"), None, RejectReason.UNKNOWN_TYPE, "teleport"),
        (make_event("click"), TopicKind.ORDERS, RejectReason.UNKNOWN_TYPE, "click"),
        (
            make_event("order_paid", ts=time.time_ns() // 1_000_000 + 3_600_000),
            None,
            RejectReason.FUTURE_TIMESTAMP,
            "ahead",
        ),
        (["not", "an", "object"], None, RejectReason.NOT_AN_EVENT, "object"),
    ],
)
def test_invalid_events_raise_before_anything_is_sent(
    make_client: Callable[..., Any],
    event: Any,
    topic: TopicKind | None,
    reason: RejectReason,
    detail: str,
) -> None:
    client, producer = make_client(linger_ms=0)
    with pytest.raises(InvalidEventError) as raised:
        client.emit(event, topic=topic)
    assert isinstance(raised.value, SalewatchError)
    assert raised.value.reason == reason
    assert detail in raised.value.detail
    client.flush()
    assert producer.sent == []


def test_builder_refuses_bad_fields_with_worker_reasons(
    make_client: Callable[..., Any],
) -> None:
    client, _ = make_client()
    with pytest.raises(InvalidEventError, match="invalid_field: qty"):
        client.cart_add(store_id="s1", channel="app", user_id="u1", sku="k", qty=0)
    with pytest.raises(InvalidEventError, match="ts needs a UTC offset"):
        client.click(store_id="s1", channel="app", user_id="u", sku="k", ts=datetime(2026, 1, 1))


def test_a_model_changed_after_creation_is_validated_again(make_client: Callable[..., Any]) -> None:
    client, _ = make_client()
    click = Click.model_validate(make_event("click"))
    click.channel = "NOT OK"
    with pytest.raises(InvalidEventError, match="channel"):
        client.emit(click)


# --- batching ---------------------------------------------------------------------------------
def test_batches_hold_one_topic_and_one_store_keyed_by_store(
    make_client: Callable[..., Any],
) -> None:
    client, producer = make_client()
    plan = [("click", "s1"), ("click", "s2"), ("cart_add", "s1"), ("click", "s1")] * 3
    for event_type, store in plan:
        client.emit(make_event(event_type, store_id=store, event_id=f"{event_type}-{store}"))
    assert producer.sent == []  # nothing full, no linger: all waiting
    assert client.pending_events == len(plan)
    client.flush()
    messages = producer.messages()
    assert sorted((topic, key, len(events)) for topic, key, events in messages) == [
        ("shop.carts", b"s1", 3),
        ("shop.clicks", b"s1", 6),
        ("shop.clicks", b"s2", 3),
    ]
    for topic, key, events in messages:
        assert {e["store_id"].encode() for e in events} == {key}
        assert {TOPIC_OF_TYPE[e["type"]] for e in events} == {topic.removeprefix("shop.")}
    assert client.stats.events_sent == len(plan)
    assert client.stats.messages_sent == 3


def test_a_batch_closes_at_max_events(make_client: Callable[..., Any]) -> None:
    client, producer = make_client(max_batch_events=10)
    for _ in range(25):
        client.emit(make_event("click"))
    assert [len(events) for _, _, events in producer.messages()] == [10, 10]
    client.flush()
    assert [len(events) for _, _, events in producer.messages()] == [10, 10, 5]


def test_batches_stay_under_max_bytes_and_decode_cleanly(make_client: Callable[..., Any]) -> None:
    client, producer = make_client(max_batch_bytes=4096)
    events = [make_event("order_created", order_id=f"o-{i}") for i in range(100)]
    for event in events:
        client.emit(event)
    client.flush()
    decoder = MessageDecoder(TopicKind.ORDERS)
    received: list[str] = []
    for _, _, value in producer.sent:
        assert len(value) <= 4096
        decoded = decoder.decode(value)
        assert decoded.rejections == []
        received.extend(e.event_id for e in decoded.events)
    assert received == [e["event_id"] for e in events]  # order kept
    assert len(producer.sent) > 1


def test_batch_limits_cannot_exceed_the_contract() -> None:
    with pytest.raises(ConfigError):
        Batcher(max_events=MAX_BATCH_EVENTS + 1)
    with pytest.raises(ConfigError):
        Batcher(max_bytes=MAX_MESSAGE_BYTES + 1)
    with pytest.raises(ConfigError):
        Batcher(linger_ms=-1)


def test_batch_size_accounting_is_exact() -> None:
    batcher = Batcher(max_bytes=1024, linger_ms=10)
    encoded = [orjson.dumps(make_event("click", event_id=f"e{i}")) for i in range(40)]
    complete = []
    for item in encoded:
        complete.extend(batcher.add(TopicKind.CLICKS, "s1", item))
    complete.extend(batcher.drain())
    for batch in complete:
        assert len(batch.value) == batch.size <= 1024
        assert orjson.loads(batch.value)  # a JSON array
    assert b"".join(e for batch in complete for e in batch.events) == b"".join(encoded)
    with pytest.raises(InvalidEventError, match="batch_too_large"):
        batcher.add(TopicKind.CLICKS, "s1", b"x" * 1024)


def test_batches_are_due_after_linger_oldest_first() -> None:
    now = [1_000]
    batcher = Batcher(linger_ms=50, clock_ms=lambda: now[0])
    batcher.add(TopicKind.CLICKS, "s1", b"{}")
    now[0] += 30
    batcher.add(TopicKind.CLICKS, "s2", b"{}")
    batcher.add(TopicKind.CLICKS, "s1", b"{}")
    assert batcher.next_due_in_ms() == 20
    assert batcher.due() == []
    now[0] += 20
    [due] = batcher.due()
    assert (due.store_id, len(due.events)) == ("s1", 2)
    assert batcher.next_due_in_ms() == 30
    assert len(batcher) == 1


def test_linger_sends_without_flush(make_client: Callable[..., Any]) -> None:
    client, producer = make_client(linger_ms=20)
    client.emit(make_event("click"))
    deadline = time.monotonic() + 5
    while not producer.sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(producer.sent) == 1
    assert client.pending_events == 0


# --- producer settings, delivery and lifecycle ------------------------------------------------
def test_idempotent_producer_settings_and_overrides(make_client: Callable[..., Any]) -> None:
    _, producer = make_client(compression_type="gzip", acks="all")
    config = producer.config
    assert config["bootstrap_servers"] == "kafka:9092"
    assert config["acks"] == "all"
    assert config["enable_idempotence"] is True
    assert 1 <= config["max_in_flight_requests_per_connection"] <= 5
    assert config["retries"] > 0
    assert config["max_request_size"] > MAX_MESSAGE_BYTES
    assert config["compression_type"] == "gzip"
    assert PRODUCER_DEFAULTS.get("compression_type") is None


def test_delivery_failures_raise_on_flush_and_are_counted(make_client: Callable[..., Any]) -> None:
    client, producer = make_client()
    producer.fail_with = TimeoutError("broker gone")
    client.emit(make_event("click"))
    client.emit(make_event("click"))
    with pytest.raises(DeliveryError, match=r"1 message.*2 event") as raised:
        client.flush()
    assert isinstance(raised.value.__cause__, TimeoutError)
    assert client.stats.events_failed == 2
    client.flush()  # reported once


def test_close_flushes_and_closing_twice_is_fine(make_client: Callable[..., Any]) -> None:
    client, producer = make_client()
    with client:
        client.emit(make_event("click"))
    assert len(producer.sent) == 1
    assert producer.closed
    client.close()
    with pytest.raises(ClientClosedError):
        client.emit(make_event("click"))
    with pytest.raises(ClientClosedError):
        client.flush()


# --- pseudonymous user ids ------------------------------------------------------------------
def test_a_key_turns_every_user_id_into_its_keyed_pseudonym(
    make_client: Callable[..., Any],
) -> None:
    key = bytes(range(32))
    client, producer = make_client(pseudonymiser=Pseudonymiser(key))
    sent = client.click(store_id="s1", channel="app", user_id="alice@example.com", sku="k")
    client.restock(store_id="s1", channel="app", sku="k", qty=5)  # no user_id: untouched
    client.flush()
    expected = "h1:" + hmac.new(key, b"alice@example.com", hashlib.sha256).hexdigest()[:32]
    assert sent.user_id == expected  # type: ignore[attr-defined]
    events = [event for _, _, batch in producer.messages() for event in batch]
    assert [event.get("user_id") for event in events] == [expected, None]
    assert b"alice" not in b"".join(value for _, _, value in producer.sent)
    other = Pseudonymiser(bytes(32)).user_id("alice@example.com")
    assert other != expected and Pseudonymiser(key).user_id("alice@example.com") == expected


def test_the_key_comes_from_the_environment_as_hex() -> None:
    assert Pseudonymiser.from_env({}) is None
    assert Pseudonymiser.from_env({"SALEWATCH_USER_ID_KEY": "ab" * 32}) is not None
    for bad in ("zz" * 32, "ab" * 8):
        with pytest.raises(ConfigError, match="SALEWATCH_USER_ID_KEY") as caught:
            Pseudonymiser.from_env({"SALEWATCH_USER_ID_KEY": bad})
        assert bad not in str(caught.value)
    assert "ab" not in repr(Pseudonymiser(bytes.fromhex("ab" * 32)))
