"""The alerts that injected incidents must raise (and the ones they may raise besides)."""

from __future__ import annotations

from collections.abc import Callable

from simulator.config import IncidentKind, ScenarioConfig
from simulator.incidents import IncidentPlan, ResolvedIncident
from simulator.inventory import RunningLow, StockOut
from simulator.truth import ExpectedAlert, GroundTruth, WindowTruth

__all__ = ["derive_alerts"]

# (numerator, denominator) of the quantity a detector watches, per window
_Measure = Callable[[WindowTruth], tuple[int, int | None]]


def _payment(w: WindowTruth) -> tuple[int, int | None]:
    return w.payment_failed, w.payment_attempts


def _checkout(w: WindowTruth) -> tuple[int, int | None]:
    return w.counts["order"], w.counts["cart"]


def _paying(w: WindowTruth) -> tuple[int, int | None]:
    return w.counts["pay"], w.counts["order"]


def _refunds(w: WindowTruth) -> tuple[int, int | None]:
    return w.refund_requested, w.counts["pay"]


def _complaints(w: WindowTruth) -> tuple[int, int | None]:
    return w.complaints, w.counts["pay"]


def _clicks(w: WindowTruth) -> tuple[int, int | None]:
    return w.counts["click"], None


def derive_alerts(
    config: ScenarioConfig, plan: IncidentPlan, stockouts: list[StockOut], truth: GroundTruth
) -> tuple[list[ExpectedAlert], list[ExpectedAlert]]:
    """(expected, allowed): every incident's alert, and side effects a detector may report.
    `stockouts` holds the stock incidents' conditions: out of stock, and running low."""
    expected: list[ExpectedAlert] = []
    allowed: list[ExpectedAlert] = []
    for stockout in stockouts:
        labels = {"store_id": stockout.store_id, "sku": stockout.sku}
        kind = stockout.incident.kind.value
        alertname = "LowStockSoon" if isinstance(stockout, RunningLow) else "StockOut"
        expected.append(
            ExpectedAlert(alertname, labels, stockout.starts_at_ms, stockout.ends_at_ms, kind)
        )
        if alertname == "StockOut":
            allowed.append(
                ExpectedAlert("LowStockSoon", labels, config.start_ms, stockout.starts_at_ms, kind)
            )
    for incident in plan.incidents:
        if incident.kind in (IncidentKind.SELLOUT, IncidentKind.SELLDOWN):
            continue
        for alertname, labels, measure in _alerts_of(incident):
            evidence = _evidence(config, truth, plan, incident, labels, measure)
            expected.append(_alert(alertname, labels, incident, evidence))
        if incident.kind is IncidentKind.PAYMENT_OUTAGE:
            for channel in incident.channels:
                labels = {"store_id": incident.store_id, "channel": channel, "stage": "pay"}
                allowed.append(_alert("ConversionDrop", labels, incident, {}))
    return expected, allowed


def _alert(
    alertname: str,
    labels: dict[str, str],
    incident: ResolvedIncident,
    evidence: dict[str, float | int | None],
) -> ExpectedAlert:
    ends = None if incident.open_ended else incident.end_ms
    return ExpectedAlert(alertname, labels, incident.start_ms, ends, incident.kind.value, evidence)


def _alerts_of(incident: ResolvedIncident) -> list[tuple[str, dict[str, str], _Measure]]:
    store = incident.store_id
    if incident.kind is IncidentKind.PAYMENT_OUTAGE:
        return [
            ("PaymentFailureSpike", {"store_id": store, "channel": channel}, _payment)
            for channel in incident.channels
        ]
    if incident.kind is IncidentKind.BROKEN_CHECKOUT:
        return [
            ("ConversionDrop", {"store_id": store, "channel": channel, "stage": "order"}, _checkout)
            for channel in incident.channels
        ]
    if incident.kind is IncidentKind.BROKEN_PAY:
        return [
            ("ConversionDrop", {"store_id": store, "channel": channel, "stage": "pay"}, _paying)
            for channel in incident.channels
        ]
    if incident.kind is IncidentKind.REFUND_WAVE:
        return [("RefundSurge", {"store_id": store}, _refunds)]
    if incident.kind is IncidentKind.COMPLAINT_WAVE:
        return [("ComplaintSurge", {"store_id": store}, _complaints)]
    if incident.kind is IncidentKind.TRAFFIC_STOP:
        return [
            ("TrafficDrop", {"store_id": store, "channel": channel}, _clicks)
            for channel in incident.channels
        ]
    return []


def _evidence(
    config: ScenarioConfig,
    truth: GroundTruth,
    plan: IncidentPlan,
    incident: ResolvedIncident,
    labels: dict[str, str],
    measure: _Measure,
) -> dict[str, float | int | None]:
    """Rate and volume per window: before the incident (clear of the rush and of the
    store's other incidents) and during it."""
    window_ms = config.window_ms
    first = -(-config.start_ms // window_ms) * window_ms  # first whole window
    busy = [(config.rush_start_ms, config.rush_end_ms)] + [
        (other.start_ms, other.end_ms) for other in plan.incidents if other.store == incident.store
    ]
    baseline_starts = {
        start
        for start in range(first, incident.start_ms - window_ms + 1, window_ms)
        if all(start + window_ms <= low or start >= high for low, high in busy)
    }
    first_during = -(-incident.start_ms // window_ms) * window_ms
    during_starts = set(range(first_during, incident.end_ms - window_ms + 1, window_ms))
    sums = {"baseline": [0, 0], "incident": [0, 0]}
    selected = truth.select(labels["store_id"], labels.get("channel"))
    for (_store, _channel, start), window in selected.items():
        if start in baseline_starts:
            bucket = sums["baseline"]
        elif start in during_starts:
            bucket = sums["incident"]
        else:
            continue
        numerator, denominator = measure(window)
        bucket[0] += numerator
        bucket[1] += denominator or 0
    evidence: dict[str, float | int | None] = {}
    for prefix, count in (("baseline", len(baseline_starts)), ("incident", len(during_starts))):
        numerator, denominator = sums[prefix]
        evidence[f"{prefix}_windows"] = count
        if measure is _clicks:
            evidence[f"{prefix}_per_window"] = round(numerator / count, 2) if count else None
        else:
            evidence[f"{prefix}_rate"] = round(numerator / denominator, 4) if denominator else None
            evidence[f"{prefix}_volume_per_window"] = (
                round(denominator / count, 2) if count else None
            )
    return evidence
