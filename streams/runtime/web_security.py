"""Who may read the worker's web port: credentials for `/metrics` and `/api/*`, TLS.

`/health` stays open (orchestrators probe it) and `/ingest/*` has its own token
(streams/ingest/http_api.py). Credentials are a bearer token, a user and password (HTTP
basic), or both; Prometheus scrapes with either (`authorization` or `basic_auth`). They are
compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["HttpAuth", "auth_middleware", "protected", "server_ssl_context"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class HttpAuth:
    token: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def enabled(self) -> bool:
        return self.token is not None or self.user is not None

    def allows(self, authorization: str | None) -> bool:
        scheme, _, given = (authorization or "").partition(" ")
        scheme, given = scheme.lower(), given.strip()
        if scheme == "bearer" and self.token is not None:
            return _same(given, self.token)
        if scheme == "basic" and self.user is not None and self.password is not None:
            try:
                user, _, password = base64.b64decode(given, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            # both compared, whatever the first gives: no timing hint of which one was wrong
            return _same(user, self.user) & _same(password, self.password)
        return False

    def challenge(self) -> str:
        schemes = ['Bearer realm="salewatch"'] if self.token is not None else []
        if self.user is not None:
            schemes.append('Basic realm="salewatch"')
        return ", ".join(schemes)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def protected(path: str) -> bool:
    """/metrics and everything under /api/ (windows, stock, alerts, and what comes later)."""
    return path == "/metrics" or path.startswith(("/metrics/", "/api/"))


def auth_middleware(
    auth: HttpAuth,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """An aiohttp middleware answering 401 on protected paths without the credentials."""

    @web.middleware
    async def require_credentials(request: web.Request, handler: Handler) -> web.StreamResponse:
        if protected(request.path) and not auth.allows(request.headers.get("Authorization")):
            return web.json_response(
                {"error": "credentials required"},
                status=401,
                headers={"WWW-Authenticate": auth.challenge()},
            )
        return await handler(request)

    return require_credentials


def server_ssl_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context
