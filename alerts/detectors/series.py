"""The window detectors of one key: a store x channel (`ChannelDetector`: ConversionDrop
per stage, PaymentFailureSpike, TrafficDrop) or a store (`StoreDetector`: RefundSurge over
its channels summed), each series with its `Track`, persisted as JSON."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from alerts.detectors.base import Context, Signal, Track, TrackKey, WindowDetector, WindowView
from alerts.detectors.complaint import ComplaintSurge
from alerts.detectors.conversion import ConversionDrop
from alerts.detectors.payment import PaymentFailureSpike
from alerts.detectors.refund import RefundSurge
from alerts.detectors.traffic import TrafficDrop
from alerts.thresholds import Thresholds

__all__ = ["ChannelDetector", "KeyDetectors", "StoreDetector"]


@dataclass
class KeyDetectors(ABC):
    store_id: str = ""
    tracks: dict[TrackKey, Track] = field(default_factory=dict)
    next_start: int | None = None  # next window to judge
    last_active_ms: int | None = None  # start of the last window with events

    def labels(self) -> dict[str, str]:
        return {"store_id": self.store_id}

    @abstractmethod
    def detectors(self, t: Thresholds) -> list[WindowDetector]: ...

    def track(self, key: TrackKey) -> Track:
        found = self.tracks.get(key)
        if found is None:
            found = self.tracks[key] = Track()
        return found

    def evaluate(self, view: WindowView, ctx: Context) -> list[Signal]:
        """Judge one window (in event-time order) with every detector of the key."""
        if view.has_events:
            self.last_active_ms = view.start_ms
        labels = self.labels()
        signals = []
        for detector in self.detectors(ctx.thresholds):
            key = TrackKey.of(detector.alertname, {**labels, **detector.labels()})
            signal = detector.observe(self.track(key), view, ctx, labels)
            if signal is not None:
                signals.append(signal)
        return signals

    def resolve_all(self, event_ms: int) -> list[Signal]:
        """Resolutions of every firing alert of the key (the key is being forgotten)."""
        return [
            Signal(alertname=key.alertname, labels=dict(key.labels), firing=False,
                   event_ms=event_ms)
            for key, track in self.tracks.items()
            if track.hysteresis.firing
        ]  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "store_id": self.store_id,
            "tracks": [[k.alertname, dict(k.labels), t.to_json()] for k, t in self.tracks.items()],
            "next": self.next_start,
            "active": self.last_active_ms,
        }

    def _load(self, data: dict[str, Any]) -> None:
        tracks = data["tracks"]
        # a dict: state of the detectors before tracks had keys (alerts/detectors.py); its
        # series start over and re-learn their baselines
        self.tracks = {
            TrackKey.of(alertname, labels): Track.from_json(raw)
            for alertname, labels, raw in (tracks if isinstance(tracks, list) else ())
        }
        self.next_start = data["next"]
        self.last_active_ms = data["active"]


@dataclass
class ChannelDetector(KeyDetectors):
    channel: str = ""

    def labels(self) -> dict[str, str]:
        return {"store_id": self.store_id, "channel": self.channel}

    def detectors(self, t: Thresholds) -> list[WindowDetector]:
        stages: list[WindowDetector] = [ConversionDrop(s) for s in t.conversion.stages]
        return [*stages, PaymentFailureSpike(), TrafficDrop()]

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "channel": self.channel}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChannelDetector:
        detector = cls(store_id=data["store_id"], channel=data["channel"])
        detector._load(data)
        return detector


@dataclass
class StoreDetector(KeyDetectors):
    """Store-wide: RefundSurge and ComplaintSurge over the store's channels, judged on
    their sum."""

    def detectors(self, t: Thresholds) -> list[WindowDetector]:
        return [RefundSurge(), ComplaintSurge()]

    def baselines(self, t: Thresholds) -> dict[str, tuple[int, int]]:
        """Per alert, the baseline's counts once it has `min_windows` (what the other
        stores learn from this one: alerts.fleet)."""
        out = {}
        for key, track in self.tracks.items():
            if track.baseline.windows >= t.baseline.min_windows:
                out[key.alertname] = track.baseline.counts()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoreDetector:
        detector = cls(store_id=data["store_id"])
        detector._load(data)
        return detector
