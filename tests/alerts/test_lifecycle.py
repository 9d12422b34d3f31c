"""Alert lifecycle: one record per change, wall-clock times for Alertmanager, event time
kept aside, escalation, held resolutions."""

from __future__ import annotations

import orjson

from alerts.clock import iso_ms
from alerts.detectors import Signal
from alerts.lifecycle import Alert, AlertBook

LABELS = {"store_id": "s1", "channel": "app", "stage": "order"}
EVENT_MS = 1_794_326_400_000  # 2026-11-11T00:00:00+08:00: the data's time
NOW_MS = 1_795_633_000_000  # the wall clock, weeks later (a replay)


def fire(severity: str = "critical", **labels: str) -> Signal:
    return Signal(alertname="ConversionDrop", labels=labels or LABELS, firing=True,
                  event_ms=EVENT_MS, severity=severity, summary="Conversion into order down 90%",
                  description="details", details={"observed": "0.04"})  # fmt: skip


def resolve(hold_s: float = 0.0) -> Signal:
    return Signal(
        alertname="ConversionDrop",
        labels=LABELS,
        firing=False,
        event_ms=EVENT_MS + 600_000,
        resolve_hold_s=hold_s,
    )


def test_fires_once_then_resolves_once() -> None:
    book = AlertBook("http://grafana:3000")
    update = book.apply(fire(), 2, NOW_MS)
    (alert,) = update.published
    assert update.stored == [alert]
    assert book.apply(fire(), 2, NOW_MS + 60_000).published == []  # still firing: no change
    (resolved,) = book.apply(resolve(), 2, NOW_MS + 120_000).published
    assert resolved is alert and not alert.firing and book.active == {}
    assert book.apply(resolve(), 2, NOW_MS + 180_000).published == []
    assert book.recently_resolved(NOW_MS + 180_000) == [alert]


def test_record_has_contract_fields_with_wall_clock_times_and_event_time_aside() -> None:
    book = AlertBook("http://grafana:3000/")
    (alert,) = book.apply(fire(), 2, NOW_MS).published
    record = alert.record()
    assert record["status"] == "firing"
    assert record["labels"] == {"alertname": "ConversionDrop", "severity": "critical",
                                "source": "salewatch", **LABELS}  # fmt: skip
    annotations = record["annotations"]
    assert annotations["runbook_url"].endswith("/alerts/runbook.md#conversiondrop")
    assert annotations["summary"] and annotations["description"]
    assert annotations["event_time"] == iso_ms(EVENT_MS) == "2026-11-10T16:00:00.000Z"
    assert record["startsAt"] == iso_ms(NOW_MS) and record["endsAt"] is None
    assert record["eventStartsAt"] == iso_ms(EVENT_MS)
    assert record["generatorURL"] == (
        "http://grafana:3000/d/salewatch-warroom?var-channel=app&var-store=s1"
    )
    book.apply(resolve(), 2, NOW_MS + 5_000)
    assert alert.record()["endsAt"] == iso_ms(NOW_MS + 5_000)
    assert alert.record()["eventEndsAt"] == iso_ms(EVENT_MS + 600_000)


def test_alertmanager_payload_ends_in_the_future_while_firing() -> None:
    book = AlertBook("http://g")
    (alert,) = book.apply(fire(), 0, NOW_MS).published
    payload = alert.payload(NOW_MS + 60_000, firing_horizon_ms=240_000)
    assert payload["startsAt"] == iso_ms(NOW_MS)
    assert payload["endsAt"] == iso_ms(NOW_MS + 300_000)  # re-sends push it on
    assert set(payload) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    book.apply(resolve(), 0, NOW_MS + 90_000)
    assert alert.payload(NOW_MS + 95_000, 240_000)["endsAt"] == iso_ms(NOW_MS + 90_000)


def test_escalation_resolves_the_warning_and_fires_the_critical() -> None:
    book = AlertBook("http://g")
    (warning,) = book.apply(fire("warning"), 1, NOW_MS).published
    resolved, critical = book.apply(fire("critical"), 1, NOW_MS + 60_000).published
    assert resolved is warning and not warning.firing
    assert critical.severity == "critical" and critical.firing
    assert critical.event_starts_ms == warning.event_starts_ms
    assert book.apply(fire("warning"), 1, NOW_MS + 120_000).published == []  # no way down
    assert book.firing_counts() == {("ConversionDrop", "critical"): 1}


def test_held_resolution_waits_and_a_new_firing_cancels_it() -> None:
    book = AlertBook("http://g")
    book.apply(fire(), 0, NOW_MS)
    update = book.apply(resolve(hold_s=120), 0, NOW_MS + 1_000)
    assert update.published == [] and len(update.stored) == 1  # the hold is kept in state
    assert book.due(NOW_MS + 60_000).published == []
    (resolved,) = book.due(NOW_MS + 121_000).published
    assert not resolved.firing and resolved.event_ends_ms == EVENT_MS + 600_000
    # again, but it fires before the hold ends: nothing resolves
    book.apply(fire(), 0, NOW_MS)
    book.apply(resolve(hold_s=120), 0, NOW_MS + 1_000)
    assert book.apply(fire(), 0, NOW_MS + 2_000).published == []
    assert book.due(NOW_MS + 500_000).published == []
    assert len(book.active) == 1


def test_encoded_alert_round_trips_and_book_restores() -> None:
    book = AlertBook("http://g")
    (alert,) = book.apply(fire(), 3, NOW_MS).published
    again = Alert.decode(alert.encode())
    assert again == alert and again.fingerprint == alert.fingerprint
    other = AlertBook("http://g")
    other.restore([again])
    assert other.apply(fire(), 3, NOW_MS).published == []
    assert other.apply(resolve(), 3, NOW_MS).published[0].identity == alert.identity


def test_a_new_state_is_not_published_yet_and_the_mark_survives_encoding() -> None:
    """The alert stage marks a state published once the alerts topic has it; a resolution
    is a new state, to publish again (alerts/stage.py, the outbox)."""
    book = AlertBook("http://g")
    (alert,) = book.apply(fire(), 3, NOW_MS).published
    assert not alert.published
    alert.published = True
    assert Alert.decode(alert.encode()).published
    book.apply(resolve(hold_s=60), 3, NOW_MS)  # held: stored, the topic's state unchanged
    assert alert.published
    (resolved,) = book.due(NOW_MS + 60_000).published
    assert resolved is alert and not alert.published
    older = orjson.loads(alert.encode())[:-1]  # a record written before the mark existed
    assert not Alert.decode(orjson.dumps(older)).published
