"""Helpers for the alert tests: the real Alertmanager's API, campaign files, scenarios with
store ids unique to one test run, and the `salewatch.alerts` topic."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import yaml

from simulator import Scenario
from tests.support.kafka import consume

T = TypeVar("T")

# Test windows are 10 s, a sixth of the default minute: the pool volumes are scaled down
# with them (statistical power depends on counts per window, see docs/alerts.md).
TEST_THRESHOLDS: dict[str, Any] = {
    "conversion": {"pool_volume": 15},
    "payment_failure": {"pool_volume": 20},
    "refund": {"pool_volume": 20},
}


def am_alerts(alertmanager_url: str, *raw: str, **matchers: str) -> list[dict[str, Any]]:
    """Alerts Alertmanager holds now (active, silenced or inhibited) matching the labels
    (`name=value` keywords) and raw matchers such as `store_id=~"r12-.*"`."""
    filters = [*raw, *(f'{name}="{value}"' for name, value in sorted(matchers.items()))]
    query = urllib.parse.urlencode([("filter", f) for f in filters])
    with urllib.request.urlopen(f"{alertmanager_url}/api/v2/alerts?{query}", timeout=5) as r:
        return list(json.loads(r.read()))


def wait_for(probe: Callable[[], T | None], timeout_s: float, interval_s: float = 0.05) -> T:
    """Poll until `probe` returns something truthy; AssertionError on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"nothing after {timeout_s} s from {probe!r}")
        time.sleep(interval_s)


def write_campaign(path: Path, phases: list[dict[str, Any]] | None = None, **sections: Any) -> Path:
    spec: dict[str, Any] = {"thresholds": TEST_THRESHOLDS, **sections}
    if phases:
        spec["phases"] = phases
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def unique_stores(scenario: Scenario, prefix: str) -> dict[str, str]:
    """Prefix every store id of the scenario (events and ground truth) so that alerts of
    this run cannot be confused with another run's in the shared Alertmanager."""
    renamed: dict[str, str] = {}
    for delivery in scenario.deliveries:
        event = delivery.event
        store_id = event["store_id"]
        if not store_id.startswith(prefix):  # duplicates share the event dict
            event["store_id"] = renamed.setdefault(store_id, prefix + store_id)
    truth = scenario.truth
    for alert in (*truth.expected_alerts, *truth.allowed_alerts):
        alert.labels["store_id"] = prefix + alert.labels["store_id"]
    return renamed


# An alert on a state of the catalog, not on an incident: every tail SKU of a simulated
# store turns slow-moving within the hour (the slow SKUs are checked against the ground
# truth in tests/integration/test_operations_kpis.py). Tests of the incident detectors
# leave it out: `incident_alerts` of the records, `NOT_CATALOG` for Alertmanager.
CATALOG_ALERTS = frozenset({"SlowMovingStock"})
NOT_CATALOG = 'alertname!~"' + "|".join(sorted(CATALOG_ALERTS)) + '"'


def alert_records(bootstrap: str, topic: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """Every record on the alerts topic so far."""
    return [
        orjson.loads(r.value) for r in consume(bootstrap, topic, 1_000_000, timeout_s=timeout_s)
    ]


AlertIdentity = frozenset[tuple[str, str]]  # an alert's labels without `severity`


def alert_identity(labels: dict[str, str]) -> AlertIdentity:
    return frozenset((name, value) for name, value in labels.items() if name != "severity")


def undelivered_alerts(
    alertmanager_url: str, records: list[dict[str, Any]], stores: Iterable[str]
) -> tuple[set[AlertIdentity], set[AlertIdentity], set[AlertIdentity]]:
    """What the alerts topic says is firing (each alert's last record), what of it
    Alertmanager lacks, and what salewatch alerts on `stores` Alertmanager holds that are
    not firing (alerts of other stores are other runs')."""
    last = {alert_identity(r["labels"]): r["status"] for r in records}
    firing = {identity for identity, status in last.items() if status == "firing"}
    ours = 'store_id=~"' + "|".join(sorted(stores)) + '"'  # simulator ids: no regex syntax
    held = {
        alert_identity(a["labels"]) for a in am_alerts(alertmanager_url, ours, source="salewatch")
    }
    return firing, firing - held, held - firing


def incident_alerts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of alerts on incidents (not CATALOG_ALERTS)."""
    return [r for r in records if r["labels"]["alertname"] not in CATALOG_ALERTS]


class Forwarder:
    """A TCP port that forwards to Alertmanager while `up`; `down` refuses new connections
    and cuts the open ones: Alertmanager "goes down and comes back" for one worker, not for
    everyone (and keeps its alerts meanwhile, as one cut off by the network does)."""

    def __init__(self, port: int, target: str) -> None:
        self.port = port
        parsed = urllib.parse.urlsplit(target)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self._server: socket.socket | None = None
        self._open: set[socket.socket] = set()  # both ends of every forwarded connection
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        """Also the kept-alive connections: a client would go on reaching Alertmanager."""
        if self._server is not None:
            _cut(self._server)  # wakes the accept() under way: the port is free
            self._server = None
        with self._lock:
            cut, self._open = self._open, set()
        for sock in cut:
            _cut(sock)

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:  # Alertmanager itself is down: the client sees its connection end
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
