"""What is normal for one key: the last N clean windows of one quantity.

Each window is a (numerator, denominator) pair. Ratios (conversion, payment failures,
refunds) use the pooled rate, sum(numerators) / sum(denominators), so busy windows weigh
more and the rate can be tested against with the counts behind it. Levels (clicks in
normal-traffic units, denominator 1) use the median, which a short surge or a few odd
windows do not move. Only windows that did not alert are added (the detectors decide).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

__all__ = ["Baseline"]

# Jeffreys-like pseudo-counts: a baseline with no failures at all is not a rate of 0
# (which would make a single failure "infinitely" significant).
PRIOR_SUCCESSES = 0.5
PRIOR_TRIALS = 1.0


@dataclass
class Baseline:
    samples: list[tuple[float, float]] = field(default_factory=list)

    def add(self, numerator: float, denominator: float, size: int) -> None:
        self.samples.append((numerator, denominator))
        del self.samples[:-size]

    @property
    def windows(self) -> int:
        return len(self.samples)

    @property
    def volume(self) -> float:
        return sum(den for _, den in self.samples)

    def counts(self) -> tuple[int, int]:
        """(successes, trials) of the windows, for tests that weigh the baseline's size."""
        return round(sum(num for num, _ in self.samples)), round(self.volume)

    def rate(self) -> float | None:
        """Pooled rate of the windows; None without any denominator."""
        successes, volume = self.counts()
        if volume <= 0:
            return None
        return (successes + PRIOR_SUCCESSES) / (volume + PRIOR_TRIALS)

    def median_level(self) -> float | None:
        if not self.samples:
            return None
        return float(statistics.median(num for num, _ in self.samples))

    def to_json(self) -> list[list[float]]:
        return [[num, den] for num, den in self.samples]

    @classmethod
    def from_json(cls, data: list[list[float]]) -> Baseline:
        return cls([(num, den) for num, den in data])
