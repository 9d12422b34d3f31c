"""The worker's `/metrics` as numbers to add up by label."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Exposition"]

Labels = dict[str, str]


@dataclass
class Exposition:
    samples: dict[str, list[tuple[Labels, float]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Exposition:
        samples: dict[str, list[tuple[Labels, float]]] = defaultdict(list)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[sample.name].append((dict(sample.labels), float(sample.value)))
        return cls(dict(samples))

    def _matching(self, name: str, labels: dict[str, str]) -> list[tuple[Labels, float]]:
        return [
            (own, value)
            for own, value in self.samples.get(name, ())
            if all(own.get(k) == v for k, v in labels.items())
        ]

    def total(self, name: str, **labels: str) -> float:
        """The sum of the series of `name` whose labels include `labels` (0 without any)."""
        return sum(value for _, value in self._matching(name, labels))

    def by(self, name: str, label: str, **labels: str) -> dict[str, float]:
        """`total` per value of `label`."""
        found: dict[str, float] = defaultdict(float)
        for own, value in self._matching(name, labels):
            if label in own:
                found[own[label]] += value
        return dict(found)

    def has(self, name: str) -> bool:
        return name in self.samples

    def label_sets(self, name: str, *labels: str) -> set[tuple[str, ...]]:
        """The distinct values of `labels` among the series of `name`."""
        return {
            tuple(own[label] for label in labels)
            for own, _ in self.samples.get(name, ())
            if all(label in own for label in labels)
        }
