"""Injected incidents resolved against a catalogue, with fast event-time look-ups."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.catalog import Catalog
from simulator.config import Incident, IncidentKind, ScenarioConfig
from simulator.errors import SimulatorError

__all__ = ["IncidentPlan", "ResolvedIncident"]

_Intervals = list[tuple[int, int, float]]  # (start_ms, end_ms, factor), end exclusive


@dataclass(frozen=True)
class ResolvedIncident:
    """An incident in absolute event time, with its target named."""

    kind: IncidentKind
    store: int
    store_id: str
    channels: tuple[str, ...]  # affected channels (empty for store-wide kinds)
    sku_rank: int | None  # sellout and selldown only
    sku: str | None
    start_ms: int
    end_ms: int  # exclusive; the scenario end when the incident lasts to the end
    open_ended: bool  # still going when the scenario ends
    factor: float

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "store_id": self.store_id,
            "channels": list(self.channels),
            "sku": self.sku,
            "start_ms": self.start_ms,
            "end_ms": None if self.open_ended else self.end_ms,
            "factor": self.factor,
        }


class IncidentPlan:
    """Answers "what does an incident do to this store x channel at this time?"."""

    def __init__(self, config: ScenarioConfig, catalog: Catalog) -> None:
        self.incidents: list[ResolvedIncident] = []
        self._traffic: dict[tuple[int, int], _Intervals] = {}
        self._payment: dict[tuple[int, int], _Intervals] = {}
        self._checkout: dict[tuple[int, int], _Intervals] = {}
        self._pay: dict[tuple[int, int], _Intervals] = {}
        self._refund: dict[int, _Intervals] = {}
        self._complaint: dict[int, _Intervals] = {}
        taken: dict[int, set[int]] = {}
        for incident in config.incidents:
            resolved = _resolve(incident, config, catalog, taken)
            self.incidents.append(resolved)
            interval = (resolved.start_ms, resolved.end_ms, resolved.factor)
            channel_indexes = [config.channels.index(name) for name in resolved.channels]
            if resolved.kind is IncidentKind.TRAFFIC_STOP:
                for channel in channel_indexes:
                    self._traffic.setdefault((resolved.store, channel), []).append(interval)
            elif resolved.kind is IncidentKind.PAYMENT_OUTAGE:
                for channel in channel_indexes:
                    self._payment.setdefault((resolved.store, channel), []).append(interval)
            elif resolved.kind is IncidentKind.BROKEN_CHECKOUT:
                for channel in channel_indexes:
                    self._checkout.setdefault((resolved.store, channel), []).append(interval)
            elif resolved.kind is IncidentKind.BROKEN_PAY:
                for channel in channel_indexes:
                    self._pay.setdefault((resolved.store, channel), []).append(interval)
            elif resolved.kind is IncidentKind.REFUND_WAVE:
                self._refund.setdefault(resolved.store, []).append(interval)
            elif resolved.kind is IncidentKind.COMPLAINT_WAVE:
                self._complaint.setdefault(resolved.store, []).append(interval)

    @property
    def sellouts(self) -> list[ResolvedIncident]:
        return [i for i in self.incidents if i.kind is IncidentKind.SELLOUT]

    @property
    def selldowns(self) -> list[ResolvedIncident]:
        return [i for i in self.incidents if i.kind is IncidentKind.SELLDOWN]

    def traffic_stops(self, store: int, channel: int) -> _Intervals:
        """Intervals in which the store x channel sends nothing (or a fraction: factor)."""
        return self._traffic.get((store, channel), [])

    def traffic_factor(self, store: int, channel: int, ts_ms: int) -> float:
        return _product(self._traffic.get((store, channel)), ts_ms)

    def payment_fail_probability(
        self, store: int, channel: int, ts_ms: int, normal: float
    ) -> float:
        intervals = self._payment.get((store, channel))
        if intervals:
            for start, end, factor in intervals:
                if start <= ts_ms < end:
                    return max(normal, factor)
        return normal

    def checkout_factor(self, store: int, channel: int, ts_ms: int) -> float:
        return _product(self._checkout.get((store, channel)), ts_ms)

    def pay_factor(self, store: int, channel: int, ts_ms: int) -> float:
        """Multiplier of the chance that an order created now gets a payment attempt."""
        return _product(self._pay.get((store, channel)), ts_ms)

    def refund_factor(self, store: int, ts_ms: int) -> float:
        return _product(self._refund.get(store), ts_ms)

    def complaint_factor(self, store: int, ts_ms: int) -> float:
        return _product(self._complaint.get(store), ts_ms)


def _product(intervals: _Intervals | None, ts_ms: int) -> float:
    factor = 1.0
    if intervals:
        for start, end, value in intervals:
            if start <= ts_ms < end:
                factor *= value
    return factor


def _resolve(
    incident: Incident, config: ScenarioConfig, catalog: Catalog, taken: dict[int, set[int]]
) -> ResolvedIncident:
    kind = IncidentKind(incident.kind)
    store = catalog.store(incident.store)
    start_ms = config.at_ms(incident.start_s)
    if start_ms >= config.end_ms:
        raise SimulatorError(
            f"incident {kind} starts at {incident.start_s} s, after the scenario ends"
        )
    open_ended = incident.end_s is None or config.at_ms(incident.end_s) >= config.end_ms
    end_ms = (
        config.end_ms
        if incident.end_s is None
        else min(config.at_ms(incident.end_s), config.end_ms)
    )
    channels: tuple[str, ...] = ()
    sku_rank: int | None = None
    if kind in (IncidentKind.PAYMENT_OUTAGE, IncidentKind.TRAFFIC_STOP):
        channels = (incident.channel or config.channels[0],)
    elif kind in (IncidentKind.BROKEN_CHECKOUT, IncidentKind.BROKEN_PAY):
        channels = (incident.channel,) if incident.channel else config.channels
    elif kind in (IncidentKind.SELLOUT, IncidentKind.SELLDOWN):
        used = taken.setdefault(incident.store, set())
        if incident.sku is not None:
            if incident.sku not in store.sku_ids:
                raise SimulatorError(f"{kind}: store {store.store_id} has no SKU {incident.sku}")
            sku_rank = store.rank_of(incident.sku)
        else:
            sku_rank = next(rank for rank in range(len(store.sku_ids)) if rank not in used)
        if sku_rank in used:
            raise SimulatorError(f"two stock incidents on one SKU in {store.store_id}")
        used.add(sku_rank)
    return ResolvedIncident(
        kind=kind,
        store=incident.store,
        store_id=store.store_id,
        channels=channels,
        sku_rank=sku_rank,
        sku=None if sku_rank is None else store.sku_ids[sku_rank],
        start_ms=start_ms,
        end_ms=end_ms,
        open_ended=open_ended,
        factor=incident.strength,
    )
