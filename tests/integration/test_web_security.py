"""The worker's web port with credentials: `/metrics` and `/api/*` refuse requests without
them, Prometheus scrapes with a bearer token, `/health` stays open, Faust's debug views are
off, and HTTPS serves with the certificate of the settings."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.support.stack import Stack
from tests.support.worker import WorkerFactory

pytestmark = pytest.mark.integration

USER, PASSWORD = "grafana", "basic-password-1"


def status_of(
    url: str, authorization: str | None = None, context: ssl.SSLContext | None = None
) -> int:
    headers = {} if authorization is None else {"Authorization": authorization}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_api_and_metrics_need_credentials_and_prometheus_scrapes_with_them(
    stack: Stack, workers: WorkerFactory
) -> None:
    assert stack.scrape_token_file is not None and stack.auth_targets_dir is not None
    token = stack.scrape_token_file.read_text().strip()
    workers.targets_dir = stack.auth_targets_dir  # the job that sends the token
    worker = workers.start(web_auth_token=token, web_auth_user=USER, web_auth_password=PASSWORD)
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for path in ("/metrics", "/api/windows/store-1/app", "/api/stock/store-1", "/api/alerts"):
        url = worker.url + path
        assert status_of(url) == 401, path
        assert status_of(url, "Bearer " + "x" * len(token)) == 401, path
        assert status_of(url, "Basic " + base64.b64encode(b"grafana:wrong").decode()) == 401
        assert status_of(url, f"Bearer {token}") == 200, path
        assert status_of(url, basic) == 200, path
    assert status_of(worker.url + "/health") == 200  # orchestrators probe without credentials
    for debug_view in ("/table/", "/router/"):
        assert status_of(worker.url + debug_view, f"Bearer {token}") == 404

    query = f'up{{job="salewatch-auth",run="{workers.run_id}"}}'
    url = f"{stack.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    deadline = time.monotonic() + 30
    values: list[str] = []
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=5) as response:
            values = [r["value"][1] for r in json.loads(response.read())["data"]["result"]]
        if values == ["1"]:
            break
        time.sleep(0.5)
    assert values == ["1"], "Prometheus did not scrape the worker with its token"


def test_https_with_the_certificate_of_the_settings(workers: WorkerFactory, tmp_path: Path) -> None:
    cert, key = tmp_path / "web.pem", tmp_path / "web.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    worker = workers.start(wait_healthy=False, web_tls_certfile=cert, web_tls_keyfile=key)
    context = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{worker.port}/health"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if status_of(url, context=context) == 200:
                break
        except OSError:
            pass
        time.sleep(0.3)
    assert status_of(url, context=context) == 200
    with pytest.raises(OSError):  # plain HTTP on the TLS port: no answer
        status_of(f"http://127.0.0.1:{worker.port}/health")
