"""Files: deliveries as JSON lines, the ground truth as JSON."""

from __future__ import annotations

from pathlib import Path

import orjson

from simulator.scenario import Delivery, Scenario
from simulator.truth import GroundTruth

__all__ = ["read_jsonl", "read_truth", "write_jsonl", "write_truth"]

_CHUNK = 10_000


def write_jsonl(scenario: Scenario, path: str | Path) -> int:
    """One delivery per line, in delivery order: {"topic", "key", "event"}; returns lines."""
    dumps = orjson.dumps
    deliveries = scenario.deliveries
    with Path(path).open("wb") as out:
        for low in range(0, len(deliveries), _CHUNK):
            lines = [
                dumps(
                    {
                        "topic": topic,
                        "key": None if key is None else key.decode(),
                        "event": event,
                    }
                )
                for topic, key, event in deliveries[low : low + _CHUNK]
            ]
            out.write(b"\n".join(lines))
            out.write(b"\n")
    return len(deliveries)


def read_jsonl(path: str | Path) -> list[Delivery]:
    deliveries = []
    with Path(path).open("rb") as lines:
        for line in lines:
            if line.strip():
                row = orjson.loads(line)
                key = row.get("key")
                deliveries.append(
                    Delivery(row["topic"], None if key is None else key.encode(), row["event"])
                )
    return deliveries


def write_truth(truth: GroundTruth, path: str | Path) -> None:
    Path(path).write_text(truth.to_json() + "\n", encoding="utf-8")


def read_truth(path: str | Path) -> GroundTruth:
    return GroundTruth.from_json(Path(path).read_bytes())
