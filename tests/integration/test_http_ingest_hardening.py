"""HTTP ingest against slow, vanishing and wrongly typed clients: a body not sent in time is
answered 408 and its connection closed, a client that hangs up is one log line, a body that
is not JSON by its Content-Type is refused."""

from __future__ import annotations

import socket
import time

import pytest

from tests.support.worker import Worker, WorkerFactory

pytestmark = pytest.mark.integration

TOKEN = "h" * 16
READ_TIMEOUT_S = 1.0


def request_head(worker: Worker, content_length: int, content_type: str) -> bytes:
    return (
        f"POST /ingest/clicks HTTP/1.1\r\nHost: 127.0.0.1:{worker.port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


def read_until_closed(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_slow_vanishing_and_mistyped_clients(workers: WorkerFactory) -> None:
    worker = workers.start(ingest_token=TOKEN, ingest_read_timeout_s=READ_TIMEOUT_S)

    slow = [socket.create_connection(("127.0.0.1", worker.port)) for _ in range(20)]
    started = time.monotonic()
    for sock in slow:  # a tenth of the body, then nothing
        sock.sendall(request_head(worker, 1000, "application/json") + b"[" + b" " * 99)
    answers = [read_until_closed(sock, timeout_s=15) for sock in slow]
    closed_after_s = time.monotonic() - started
    for sock in slow:
        sock.close()
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers), answers[0][:200]
    assert READ_TIMEOUT_S <= closed_after_s < READ_TIMEOUT_S + 10  # a loaded machine is slow

    for _ in range(5):  # hang up mid-body
        with socket.create_connection(("127.0.0.1", worker.port)) as sock:
            sock.sendall(request_head(worker, 100_000, "application/json") + b"[{" * 100)
        time.sleep(0.1)
    deadline = time.monotonic() + 10
    while worker.log().count("hung up mid-body") < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    log = worker.log()
    assert log.count("hung up mid-body") == 5
    assert "http_api.py" not in log  # no traceback through HTTP ingest

    with socket.create_connection(("127.0.0.1", worker.port)) as sock:
        sock.sendall(request_head(worker, 2, "text/plain") + b"[]")
        assert read_until_closed_or_answer(sock).startswith(b"HTTP/1.1 415")


def read_until_closed_or_answer(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    return sock.recv(65536)
