"""Reading a worker's HTTP API: JSON and the Prometheus exposition, from any worker.

State lives on the worker that owns its partition; the others answer 307 with the owner's
address. urllib follows a 307 of a GET to the `Location` (RFC 9110 keeps the method), so
whichever worker the live view is pointed at, each answer comes from the owner.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import orjson

__all__ = ["WorkerApi", "WorkerUnreachable"]


class WorkerUnreachable(Exception):
    """The worker did not answer, or answered with an error status."""


class WorkerApi:
    def __init__(self, base_url: str, timeout_s: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def get(self, path: str, **query: str) -> tuple[int, bytes]:
        """Status and body of `GET path?query` (4xx and 5xx too), after redirects."""
        url = self.base_url + urllib.parse.quote(path)
        if query:
            url += "?" + urllib.parse.urlencode(query)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (OSError, ValueError) as exc:
            raise WorkerUnreachable(f"{url}: {exc}") from exc

    def json(self, path: str, **query: str) -> Any:
        """The JSON body of a 200; None for any other status (404: not assigned yet)."""
        status, body = self.get(path, **query)
        return orjson.loads(body) if status == 200 else None

    def text(self, path: str) -> str:
        status, body = self.get(path)
        if status != 200:
            raise WorkerUnreachable(f"{self.base_url}{path} answered {status}")
        return body.decode()
