"""HTTP ingest: `POST /ingest/<topic>` on the worker's web port, for stores without Kafka.

The body is what a Kafka message value may be (docs/contract.md §1): one event object or a JSON
array of at most 10,000 events, at most 1 MiB (and at most SALEWATCH_INGEST_MAX_BYTES).
It is validated by the same decoder as Kafka ingest. The accepted events are written as one
batch message to the input topic, so stage 1 counts and routes them like any other message;
each rejected event goes to the dead-letter topic (original partition and offset -1).

Answers (docs/sdk.md):
  202  {"accepted": n, "rejected": m, "errors": [{"index", "reason", "detail"}]}
  400  the body as a whole is not an event or a batch (same JSON shape, index null)
  401  missing or wrong `Authorization: Bearer <token>`
  404  HTTP ingest disabled (SALEWATCH_INGEST_TOKEN unset), or unknown topic
  408  the body was not read in full within SALEWATCH_INGEST_READ_TIMEOUT_S (connection closed)
  413  body over the size limit, a batch over 10,000 events, or a message Kafka refuses as
       too large: none of these can ever be accepted, retrying does not help
  415  Content-Type is not application/json
  503  Kafka did not take the messages for now; retrying is safe (duplicates count once)

Dead letters are cut to fit Kafka's size limit (streams/contract/deadletter.py), so a large invalid
body is dead-lettered and answered 400, and counted only once Kafka acknowledged it.

Validating a body of 5,000 events takes about a tenth of a second of CPU: it runs in a process
of its own, one body at a time, so the event loop (the pipeline, /health, /metrics) keeps
answering meanwhile (a thread would share the interpreter lock with the pipeline; measured:
benchmarks/http_ingest_load.py). A client that hangs up before its body is read is logged
in one line.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import faust
from aiohttp import web as aiohttp_web
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError
from faust.web import Request, Response, View

from streams.contract.deadletter import DeadLetter, dead_letter
from streams.contract.decoding import MessageDecoder, Rejection, RejectReason
from streams.contract.events import TopicKind
from streams.contract.routing import fields_of
from streams.ingest.ingestor import encode_chunks
from streams.runtime.metrics import Metrics
from streams.runtime.settings import Settings
from streams.runtime.topics import Topics

__all__ = ["INGEST_PATH", "HttpIngestor", "IngestAnswer", "Validation", "register"]

log = logging.getLogger(__name__)

INGEST_PATH = "/ingest/{topic}"
HTTP_PARTITION = HTTP_OFFSET = -1  # dead-letter headers of events that came over HTTP
# Kafka refuses these for the size of what was sent: sending it again cannot succeed.
TOO_LARGE_FOR_KAFKA = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError)

# Faults of the body as a whole (no event could be read), by HTTP status.
_WHOLE_BODY_STATUS = {
    RejectReason.INVALID_JSON: 400,
    RejectReason.NOT_AN_EVENT: 400,
    RejectReason.EMPTY_BATCH: 400,
    RejectReason.BATCH_TOO_LARGE: 413,
}


@dataclass
class IngestAnswer:
    """What to write to Kafka and what to answer for one request body."""

    status: int
    body: dict[str, Any]
    topic: str
    batches: list[bytes] = field(default_factory=list)  # accepted events, JSON arrays
    key: bytes | None = None  # store_id when every accepted event is of one store
    dead_letters: list[DeadLetter] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)  # by reason


class HttpIngestor:
    """Request bodies of one worker's input topics -> answers (what to write and to say)."""

    def __init__(self, settings: Settings) -> None:
        self._topics = {kind: settings.input_topic(kind) for kind in TopicKind}
        self._decoders = {kind: MessageDecoder(kind, settings.max_future_ms) for kind in TopicKind}

    def accept(self, kind: TopicKind, body: bytes) -> IngestAnswer:
        decoded = self._decoders[kind].decode(body)
        topic = self._topics[kind]
        whole = _whole_body_fault(decoded.rejections)
        answer = IngestAnswer(
            status=202 if whole is None else _WHOLE_BODY_STATUS[whole.reason],
            body={
                "accepted": len(decoded.events),
                "rejected": len(decoded.rejections),
                "errors": [_error(r, whole is None) for r in decoded.rejections],
            },
            topic=topic,
            dead_letters=[
                dead_letter(r, None, topic, HTTP_PARTITION, HTTP_OFFSET) for r in decoded.rejections
            ],
            rejected=Counter(r.reason.value for r in decoded.rejections),
        )
        if decoded.events:
            answer.batches = list(encode_chunks([fields_of(event) for event in decoded.events]))
            stores = {event.store_id for event in decoded.events}
            answer.key = stores.pop().encode() if len(stores) == 1 else None
        return answer


def count_dead_letters(metrics: Metrics, answer: IngestAnswer) -> None:
    """Count the dead letters of an answer whose messages Kafka acknowledged. (Accepted
    events are not counted here: stage 1 counts them when it reads the batch.)"""
    for reason, n in answer.rejected.items():
        metrics.deadletters.labels(answer.topic, reason).inc(n)


_ingestor: HttpIngestor | None = None  # in the validation process


def _start_validation(settings: Settings) -> None:
    global _ingestor
    _ingestor = HttpIngestor(settings)


def _accept(kind: TopicKind, body: bytes) -> IngestAnswer:
    assert _ingestor is not None, "runs in the validation process"
    return _ingestor.accept(kind, body)


class Validation:
    """HttpIngestor.accept in a process of its own, one body at a time; a new process when
    the last one died (the body it had is answered 503: retrying is safe)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),  # fork is unsafe with threads
            initializer=_start_validation,
            initargs=(self._settings,),
        )

    async def accept(self, kind: TopicKind, body: bytes) -> IngestAnswer:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, _accept, kind, body)
        except BrokenProcessPool:
            self._pool = self._new_pool()
            raise

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _whole_body_fault(rejections: list[Rejection]) -> Rejection | None:
    if len(rejections) == 1 and rejections[0].index is None:
        rejection = rejections[0]
        if rejection.reason in _WHOLE_BODY_STATUS:
            return rejection
    return None


def _error(rejection: Rejection, events_read: bool) -> dict[str, Any]:
    """`index` is the event's position in the body (a lone object is 0); null when the
    body as a whole was refused."""
    index = rejection.index if rejection.index is not None else (0 if events_read else None)
    return {"index": index, "reason": rejection.reason.value, "detail": rejection.detail}


def bearer_matches(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


class ClientGone(Exception):
    """The client closed the connection before its body was read."""


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is longer than `limit` bytes (read no further)."""
    raw = cast(aiohttp_web.BaseRequest, request)
    if raw.content_length is not None and raw.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in raw.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    except (ConnectionError, aiohttp_web.HTTPException, aiohttp.ClientPayloadError) as exc:
        raise ClientGone(f"{type(exc).__name__} after {size} bytes") from None
    return b"".join(chunks)


def is_json(content_type: str | None) -> bool:
    """`application/json`, with or without parameters (`; charset=utf-8`)."""
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


def register(app: faust.App, settings: Settings, topics: Topics, metrics: Metrics) -> None:
    validation = Validation(settings)
    # The contract caps a message at 1 MiB; a larger body could not become one message.
    max_bytes = settings.ingest_max_bytes
    kinds = ", ".join(kind.value for kind in TopicKind)
    read_timeout_s = settings.ingest_read_timeout_s

    @app.on_before_shutdown.connect
    async def stop_validation(sender: Any, *args: Any, **kwargs: Any) -> None:
        validation.stop()

    @app.page(INGEST_PATH)
    class Ingest(View):
        async def post(self, request: Request, topic: str) -> Response:  # type: ignore[override]
            token = settings.ingest_token
            if token is None:
                return self.error(404, "HTTP ingest is disabled: set SALEWATCH_INGEST_TOKEN")
            if not bearer_matches(request.headers.get("Authorization"), token.get_secret_value()):
                return self.error(
                    401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
                )
            try:
                kind = TopicKind(topic)
            except ValueError:
                return self.error(404, f"unknown topic {topic!r}: one of {kinds}")
            if not is_json(request.headers.get("Content-Type")):
                return self.error(415, "Content-Type must be application/json")
            try:
                body = await asyncio.wait_for(read_limited(request, max_bytes), read_timeout_s)
            except TimeoutError:
                return await _closing(request, 408, f"body not received in {read_timeout_s:g} s")
            except ClientGone as gone:
                remote = cast(aiohttp_web.BaseRequest, request).remote
                log.info("http ingest: client %s hung up mid-body (%s)", remote, gone)
                return self.error(400, "connection closed before the body was read")
            if body is None:
                return self.error(413, f"body over {max_bytes} bytes")
            try:
                answer = await validation.accept(kind, body)
            except BrokenProcessPool:
                log.error("http ingest: the validation process died; starting a new one")
                return self.error(503, "validation restarting: retry")
            try:
                await _produce(topics, kind, answer)
            except TOO_LARGE_FOR_KAFKA as exc:
                log.warning("http ingest: Kafka refused a message as too large: %r", exc)
                return self.error(
                    413,
                    f"Kafka refused the message as too large ({exc!r}); it can never be "
                    "accepted: send smaller batches",
                )
            except Exception as exc:  # any other producer failure: tell the client to retry
                log.warning("http ingest: could not write to Kafka: %r", exc)
                return self.error(503, f"could not write to Kafka: {exc!r}")
            count_dead_letters(metrics, answer)
            return self.json(answer.body, status=answer.status)


async def _closing(request: Request, status: int, error: str) -> Response:
    """Answer and close the connection at once: aiohttp would otherwise keep reading the rest
    of the body for up to 10 s (lingering), and a slow client would hold the socket anyway."""
    raw = cast(aiohttp_web.BaseRequest, request)
    response = aiohttp_web.json_response({"error": error}, status=status)
    response.force_close()
    await response.prepare(raw)
    await response.write_eof()
    if raw.transport is not None:
        raw.transport.close()
    return cast(Response, response)


async def _produce(topics: Topics, kind: TopicKind, answer: IngestAnswer) -> None:
    """Write the accepted batch and the dead letters; return when Kafka acknowledged them."""
    pending = [
        await topics.inputs[kind].send(key=answer.key, value=payload) for payload in answer.batches
    ]
    pending += [
        await topics.deadletter.send(key=letter.key, value=letter.value, headers=letter.headers)
        for letter in answer.dead_letters
    ]
    await asyncio.gather(*pending)
