"""No log line of a worker (nor of its stage-1 process) carries a user id or a token: events
valid and invalid, wrong tokens and credentials, everything a worker logs about them is
grepped."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.support.events import make_event
from tests.support.worker import Worker, WorkerFactory

pytestmark = pytest.mark.integration

INGEST_TOKEN = "ingest-token-" + "q" * 16
WEB_TOKEN = "web-token-" + "z" * 16
USER = "user-PRIVATE-7f3a91"


def post(worker: Worker, body: bytes, token: str) -> int:
    request = urllib.request.Request(
        worker.url + "/ingest/clicks",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_worker_logs_carry_no_user_id_and_no_token(workers: WorkerFactory) -> None:
    worker = workers.start(ingest_token=INGEST_TOKEN, web_auth_token=WEB_TOKEN)
    events = [make_event("click", user_id=f"{USER}-{i}") for i in range(20)]
    invalid = [
        make_event("click", user_id=f"{USER}-bad-{i}", channel="NOT VALID") for i in range(5)
    ] + [{"type": "click", "user_id": f"{USER}-partial"}]
    assert post(worker, json.dumps(events + invalid).encode(), INGEST_TOKEN) == 202
    assert post(worker, b"[{", INGEST_TOKEN) == 400
    assert post(worker, json.dumps(events).encode(), INGEST_TOKEN[:-1] + "x") == 401
    assert post(worker, b"[]", WEB_TOKEN) == 401
    for authorization in (f"Bearer {INGEST_TOKEN}", f"Bearer {WEB_TOKEN}x", "Basic Og=="):
        request = urllib.request.Request(
            worker.url + "/metrics", headers={"Authorization": authorization}
        )
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(request, timeout=10)
    deadline = time.monotonic() + 30
    while "salewatch_events_total{topic=" not in metrics(worker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "salewatch_events_total{topic=" in metrics(worker)  # the events went through
    log = worker.log()
    assert USER not in log
    for token in (INGEST_TOKEN, WEB_TOKEN, INGEST_TOKEN[:12], WEB_TOKEN[:12]):
        assert token not in log


def metrics(worker: Worker) -> str:
    request = urllib.request.Request(
        worker.url + "/metrics", headers={"Authorization": f"Bearer {WEB_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode())
