"""Alert lifecycle: detector signals become firing and resolved alerts, once per change.

Times. Alertmanager judges `startsAt`/`endsAt` against its own (wall) clock: an alert whose
`endsAt` has passed is resolved. Event time can lag the wall clock by minutes (a backlog, a
replay, a late store), so alerts carry WALL-CLOCK `startsAt` (when salewatch detected it)
and `endsAt` (when it resolved; while firing, `now + 4 x resend interval`, refreshed by
every re-send, so alerts of a dead worker expire by themselves). The event time of the
incident, when it happened in the data, is kept in the `event_time` annotation (and
`eventStartsAt` / `eventEndsAt` of the `salewatch.alerts` record), never in a label: labels
identify an alert, and a label that changed would make a new one.

Identity is the alert name plus its labels without `severity`; a firing alert that escalates
(warning -> critical) resolves the warning and fires the critical one (two label sets in
Alertmanager, whose inhibition rule mutes the warning meanwhile). It never de-escalates
while firing. A resolve may be held (`Signal.resolve_hold_s`): the alert resolves only if
nothing fires it again before the hold ends (stock hovering around a line does not flap).
"""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from alerts.clock import iso_ms
from alerts.detectors import Signal
from alerts.links import WARROOM_DASHBOARD_UID, dashboard_url, runbook_url

__all__ = ["SOURCE", "Alert", "AlertBook", "Update", "identity_of"]

SOURCE = "salewatch"
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
RESOLVED_KEPT = 500  # recently resolved alerts kept for GET /api/alerts
RESOLVED_TTL_MS = 3_600_000


def identity_of(alertname: str, labels: dict[str, str]) -> str:
    own = "|".join(f"{name}={value}" for name, value in sorted(labels.items()))
    return f"{alertname}|{own}"


@dataclass
class Alert:
    labels: dict[str, str]  # alertname, severity, source and the alert's own labels
    annotations: dict[str, str]
    generator_url: str
    starts_at_ms: int  # wall clock
    event_starts_ms: int  # event time
    partition: int  # the stage partition whose state it belongs to
    ends_at_ms: int | None = None  # wall clock, set when resolved
    event_ends_ms: int | None = None
    resolve_due_ms: int | None = None  # a held resolve: wall clock when it happens
    resolve_event_ms: int | None = None
    published: bool = False  # this state (firing or resolved) is on the alerts topic

    @property
    def alertname(self) -> str:
        return self.labels["alertname"]

    @property
    def severity(self) -> str:
        return self.labels["severity"]

    @property
    def identity(self) -> str:
        own = {k: v for k, v in self.labels.items() if k not in ("alertname", "severity", "source")}
        return identity_of(self.alertname, own)

    @property
    def fingerprint(self) -> str:
        canonical = orjson.dumps(self.labels, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()[:16]

    @property
    def firing(self) -> bool:
        return self.ends_at_ms is None

    @property
    def status(self) -> str:
        return "firing" if self.firing else "resolved"

    def record(self) -> dict[str, Any]:
        """The `salewatch.alerts` record and the HTTP API's view."""
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": iso_ms(self.starts_at_ms),
            "endsAt": None if self.ends_at_ms is None else iso_ms(self.ends_at_ms),
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
            "eventStartsAt": iso_ms(self.event_starts_ms),
            "eventEndsAt": None if self.event_ends_ms is None else iso_ms(self.event_ends_ms),
        }

    def payload(self, now_ms: int, firing_horizon_ms: int) -> dict[str, Any]:
        """One element of Alertmanager's `POST /api/v2/alerts` body, as of `now_ms`."""
        ends = self.ends_at_ms if self.ends_at_ms is not None else now_ms + firing_horizon_ms
        return {
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": iso_ms(self.starts_at_ms),
            "endsAt": iso_ms(ends),
            "generatorURL": self.generator_url,
        }

    def encode(self) -> bytes:
        return orjson.dumps(
            [self.labels, self.annotations, self.generator_url, self.starts_at_ms,
             self.event_starts_ms, self.partition, self.ends_at_ms, self.event_ends_ms,
             self.resolve_due_ms, self.resolve_event_ms, self.published]
        )  # fmt: skip

    @classmethod
    def decode(cls, raw: bytes) -> Alert:
        return cls(*orjson.loads(raw))


@dataclass
class Update:
    """What one change did: `published` are state changes (topic, Alertmanager, log);
    `stored` need their table entry written (firing) or deleted (resolved)."""

    published: list[Alert] = field(default_factory=list)
    stored: list[Alert] = field(default_factory=list)

    def extend(self, other: Update) -> None:
        self.published.extend(other.published)
        self.stored.extend(other.stored)


class AlertBook:
    """The firing alerts of the partitions this worker holds, and recent resolutions."""

    def __init__(self, grafana_url: str) -> None:
        self.grafana_url = grafana_url
        self.active: dict[str, Alert] = {}
        self.resolved: deque[Alert] = deque(maxlen=RESOLVED_KEPT)

    # --- changes ------------------------------------------------------------------------
    def apply(self, signal: Signal, partition: int, now_ms: int) -> Update:
        identity = identity_of(signal.alertname, dict(signal.labels))
        current = self.active.get(identity)
        if signal.firing:
            if current is None:
                return self._fire(self._new(signal, partition, now_ms, signal.event_ms))
            update = Update()
            if current.resolve_due_ms is not None:
                current.resolve_due_ms = current.resolve_event_ms = None
                update.stored.append(current)
            if SEVERITY_RANK.get(signal.severity, 0) > SEVERITY_RANK.get(current.severity, 0):
                update.extend(self._resolve(current, now_ms, signal.event_ms))
                escalated = self._new(signal, partition, now_ms, current.event_starts_ms)
                update.extend(self._fire(escalated))
            return update
        if current is None:
            return Update()
        if signal.resolve_hold_s > 0:
            if current.resolve_due_ms is not None:
                return Update()
            current.resolve_due_ms = now_ms + round(signal.resolve_hold_s * 1000)
            current.resolve_event_ms = signal.event_ms
            return Update(stored=[current])
        return self._resolve(current, now_ms, signal.event_ms)

    def due(self, now_ms: int) -> Update:
        """Held resolutions whose time has come."""
        update = Update()
        for alert in [a for a in self.active.values() if a.resolve_due_ms is not None]:
            assert alert.resolve_due_ms is not None
            if alert.resolve_due_ms <= now_ms:
                event_ms = alert.resolve_event_ms or alert.event_starts_ms
                update.extend(self._resolve(alert, now_ms, event_ms))
        return update

    def _new(self, signal: Signal, partition: int, now_ms: int, event_ms: int) -> Alert:
        labels = {"alertname": signal.alertname, "severity": signal.severity,
                  "source": SOURCE, **signal.labels}  # fmt: skip
        annotations = {
            "summary": signal.summary,
            "description": signal.description,
            "runbook_url": runbook_url(signal.alertname),
            "event_time": iso_ms(event_ms),
            **signal.details,
        }
        variables = {"store": signal.labels.get("store_id", "")}
        if "channel" in signal.labels:
            variables["channel"] = signal.labels["channel"]
        url = dashboard_url(self.grafana_url, WARROOM_DASHBOARD_UID, **variables)
        return Alert(labels, annotations, url, now_ms, event_ms, partition)

    def _fire(self, alert: Alert) -> Update:
        self.active[alert.identity] = alert
        return Update([alert], [alert])

    def _resolve(self, alert: Alert, now_ms: int, event_ms: int) -> Update:
        self.active.pop(alert.identity, None)
        alert.ends_at_ms = now_ms
        alert.event_ends_ms = event_ms
        alert.resolve_due_ms = alert.resolve_event_ms = None
        alert.published = False
        self.resolved.append(alert)
        return Update([alert], [alert])

    # --- partitions -----------------------------------------------------------------------
    def restore(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            self.active[alert.identity] = alert

    def forget(self) -> None:
        """After a rebalance: the tables are the truth; partitions are loaded again."""
        self.active.clear()

    # --- reading --------------------------------------------------------------------------
    def firing_counts(self) -> Counter[tuple[str, str]]:
        return Counter((a.alertname, a.severity) for a in self.active.values())

    def recently_resolved(self, now_ms: int) -> list[Alert]:
        return [a for a in self.resolved if (a.ends_at_ms or 0) >= now_ms - RESOLVED_TTL_MS]
