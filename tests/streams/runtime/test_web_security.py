"""Credentials for the web port: what is let in, and settings refused at start."""

from __future__ import annotations

import base64

import pytest

from streams.contract.errors import ConfigError
from streams.runtime.settings import load_settings
from streams.runtime.web_security import HttpAuth, protected

TOKEN = "a-long-bearer-token"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_bearer_and_basic_are_each_accepted_exactly() -> None:
    auth = HttpAuth(token=TOKEN, user="prom", password="scrape-password")
    assert auth.allows(f"Bearer {TOKEN}") and auth.allows(f"bearer  {TOKEN} ")
    assert auth.allows(basic("prom", "scrape-password"))
    for wrong in (None, "", TOKEN, f"Bearer {TOKEN}x", basic("prom", "nope"), "Basic %%%"):
        assert not auth.allows(wrong), wrong
    assert auth.challenge() == 'Bearer realm="salewatch", Basic realm="salewatch"'
    assert TOKEN not in repr(auth) and "scrape-password" not in repr(auth)


def test_only_a_token_means_basic_is_refused() -> None:
    assert not HttpAuth(token=TOKEN).allows(basic("anyone", TOKEN))


@pytest.mark.parametrize(
    ("path", "needs_credentials"),
    [("/metrics", True), ("/api/windows/s/c", True), ("/api/alerts", True),
     ("/health", False), ("/ingest/clicks", False), ("/metricsx", False)],
)  # fmt: skip
def test_what_is_protected(path: str, needs_credentials: bool) -> None:
    assert protected(path) is needs_credentials


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SALEWATCH_WEB_HOST": "0.0.0.0"}, "SALEWATCH_WEB_AUTH_TOKEN"),
        ({"SALEWATCH_WEB_AUTH_USER": "prom"}, "SALEWATCH_WEB_AUTH_PASSWORD"),
        ({"SALEWATCH_WEB_TLS_CERTFILE": "/nonexistent.pem"}, "SALEWATCH_WEB_TLS_KEYFILE"),
        (
            {"SALEWATCH_WEB_TLS_CERTFILE": "/nonexistent", "SALEWATCH_WEB_TLS_KEYFILE": "/x"},
            "cannot load",
        ),
        ({"SALEWATCH_WEB_AUTH_TOKEN": "short"}, "SALEWATCH_WEB_AUTH_TOKEN"),
    ],
)
def test_bad_web_settings_fail_at_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=named) as caught:
        load_settings()
    assert "short'" not in str(caught.value)  # a token is never echoed


def test_beyond_loopback_with_credentials_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALEWATCH_WEB_HOST", "0.0.0.0")
    monkeypatch.setenv("SALEWATCH_WEB_AUTH_TOKEN", TOKEN)
    assert load_settings().http_auth.enabled
