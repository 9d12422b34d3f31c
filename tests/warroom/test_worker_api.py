"""The live view asks any worker; a 307 from a worker that does not own a key is followed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from warroom.worker_api import WorkerApi, WorkerUnreachable


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def owner_and_other() -> Iterator[tuple[str, str]]:
    class Owner(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"asked": "%s"}' % self.path.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    owner = serve(Owner)
    owner_url = f"http://127.0.0.1:{owner.server_port}"

    class Other(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # what a worker answers for a partition it does not own
            self.send_response(307)
            self.send_header("Location", owner_url + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

    other = serve(Other)
    yield owner_url, f"http://127.0.0.1:{other.server_port}"
    owner.shutdown()
    other.shutdown()


def test_a_redirect_to_the_owner_is_followed(owner_and_other: tuple[str, str]) -> None:
    _, other = owner_and_other
    answer = WorkerApi(other).json("/api/stock/store 1", status="out,low")
    assert answer == {"asked": "/api/stock/store%201?status=out%2Clow"}


def test_a_worker_that_does_not_answer_is_reported() -> None:
    with pytest.raises(WorkerUnreachable, match=r"127\.0\.0\.1:9"):
        WorkerApi("http://127.0.0.1:9", timeout_s=0.5).text("/metrics")
