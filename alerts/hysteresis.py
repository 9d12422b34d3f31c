"""Fire after k breaching windows of the last n; resolve after m clean windows in a row."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from alerts.thresholds import HysteresisRule

__all__ = ["Change", "Hysteresis"]

_KEEP = 16  # results remembered (HysteresisRule.fire_n is at most 16)


class Change(enum.Enum):
    FIRE = "fire"
    RESOLVE = "resolve"


@dataclass
class Hysteresis:
    recent: list[tuple[int, bool]] = field(default_factory=list)  # (window start, breach)
    clean_streak: int = 0
    firing: bool = False
    since_ms: int | None = None  # event time: first breaching window of the firing alert

    def update(self, start_ms: int, breach: bool | None, rule: HysteresisRule) -> Change | None:
        """One window's result: True breach, False clean, None not judged (held)."""
        if breach is None:
            return None
        self.recent.append((start_ms, breach))
        del self.recent[:-_KEEP]
        if breach:
            self.clean_streak = 0
            window = self.recent[-rule.fire_n :]
            if not self.firing and sum(b for _, b in window) >= rule.fire_k:
                self.firing = True
                self.since_ms = next(start for start, b in window if b)
                return Change.FIRE
            return None
        self.clean_streak += 1
        if self.firing and self.clean_streak >= rule.resolve_m:
            self.firing = False
            self.since_ms = None
            self.recent.clear()
            return Change.RESOLVE
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "recent": [[start, int(b)] for start, b in self.recent],
            "clean": self.clean_streak,
            "firing": self.firing,
            "since": self.since_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Hysteresis:
        recent = data.get("recent") or []
        assert isinstance(recent, list)
        since = data.get("since")
        clean = data.get("clean", 0)
        assert isinstance(clean, int)
        return cls(
            [(int(start), bool(b)) for start, b in recent],
            clean,
            bool(data.get("firing")),
            since if isinstance(since, int) else None,
        )
