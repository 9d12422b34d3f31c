"""Issue: every closed window on salewatch.windows equals the simulator's ground truth.

Real broker, 4 partitions, 2 workers in one consumer group, random message keys, >100k
events with duplicates, out-of-order and late events.
"""

from __future__ import annotations

import time

import orjson
import pytest

from simulator import KeyMode, ScenarioConfig, generate, produce
from tests.support.kafka import consume
from tests.support.windows import window_differences, window_id
from tests.support.worker import WorkerFactory

pytestmark = pytest.mark.integration

WINDOW_MS = 10_000
GRACE_MS = 3_000


def test_closed_windows_equal_ground_truth_with_two_workers(workers: WorkerFactory) -> None:
    config = ScenarioConfig(
        seed=11,
        duration_s=600,
        base_rate=170,
        window_ms=WINDOW_MS,
        grace_ms=GRACE_MS,
        key_mode=KeyMode.RANDOM,
        duplicate_rate=0.02,
        out_of_order_rate=0.1,
        late_rate=0.003,
    )
    scenario = generate(config)
    truth = scenario.truth
    assert len(scenario) >= 100_000
    assert truth.duplicates > 0 and truth.late_event_ids

    settings = {"window_ms": WINDOW_MS, "grace_ms": GRACE_MS, "idle_ms": 2_000, "partitions": 4}
    # Produced before the workers start: the replay runs 30x faster than the event time it
    # covers, the hardest case for event-time order across topics and workers.
    produce(scenario, workers.stack.kafka_bootstrap, topic_prefix=workers.topic_prefix)
    first = workers.start(**settings)
    second = workers.start(**settings)

    expected = len(truth.windows)
    records = consume(
        workers.stack.kafka_bootstrap, workers.output_topic("windows"), expected, timeout_s=240
    )
    time.sleep(3)  # anything emitted twice would arrive now
    records = consume(
        workers.stack.kafka_bootstrap, workers.output_topic("windows"), expected + 1, timeout_s=5
    )
    windows = [orjson.loads(r.value) for r in records]
    keys = [window_id(w) for w in windows]
    assert len(keys) == len(set(keys)), "a window was emitted more than once"
    assert set(keys) == set(truth.windows)
    for window in windows:
        assert window_differences(window, truth.windows[window_id(window)]) == [], window_id(window)

    late = sum(_metric(w.metrics(), "salewatch_late_events_total") for w in (first, second))
    duplicates = sum(
        _metric(w.metrics(), "salewatch_duplicate_events_total") for w in (first, second)
    )
    assert late == len(truth.late_event_ids)
    # at least the store's re-sends; a rebalance may redeliver more, all dropped by event_id
    assert duplicates >= truth.duplicates


def _metric(exposition: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )
