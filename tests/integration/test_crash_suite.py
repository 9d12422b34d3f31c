"""The short crash suite (`python -m benchmarks.crash_suite` runs the long one): a live sale,
its worker killed with SIGKILL at a random moment and started again on its data directory,
then its stage-1 process killed. Each time the worker serves again (`crash_run` fails after
SERVING_TIMEOUT_S: the takeover target of 15 s is the long suite's to measure, a loaded
test machine takes longer), and every window comes out once, equal to the truth
(docs/architecture.md, "After a crash"), and Alertmanager holds exactly the alerts the
alerts topic last says are firing. The stock after kills is the long suite's to judge.
Then the sale's producer stalls, the broker itself is stopped and started mid-sale, and
Alertmanager goes away with a kill inside."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.crash_suite import CONFIGS, NOW, crash_run, scenario
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

STATIC = CONFIGS["static"]
EXACT = (0, 0, 0, 0)  # windows different, missing, unexpected, emitted twice


def outcome(row: dict[str, object]) -> tuple[object, ...]:
    return row["different"], row["missing"], row["unexpected"], row["emitted twice"]


def alerts_delivered(row: dict[str, object]) -> bool:
    return row["not in Alertmanager"] == 0 and row["stale in Alertmanager"] == 0


def test_a_killed_worker_and_stage_1_serve_again_and_lose_no_window(
    stack: Stack, tmp_path: Path
) -> None:
    sale = scenario(events=30_000)
    # seed 7: the worker first, then its stage-1 process
    row = crash_run(
        stack, tmp_path, sale, "restart", 2, NOW, seed=7, fault_every_s=10, check_stock=False
    )
    assert row["faults"] == "1 kill worker, 1 kill stage 1", row
    assert row["expected"] == len(sale.truth.windows)
    assert outcome(row) == EXACT and alerts_delivered(row), row


def test_with_static_membership_a_killed_worker_restarted_under_its_id_serves_within_30_s(
    stack: Stack, tmp_path: Path
) -> None:
    """Without a group instance id the group waits out the 60 s session timeout before
    the restarted worker gets the dead one's partitions (64 s in the test above)."""
    sale = scenario(events=30_000)
    row = crash_run(
        stack, tmp_path, sale, "restart", 2, STATIC, seed=7, fault_every_s=10, check_stock=False
    )
    assert row["faults"] == "1 kill worker, 1 kill stage 1", row
    assert row["takeover max s"] < 30, row
    assert outcome(row) == EXACT and alerts_delivered(row), row


def test_a_producer_stalled_shorter_than_idle_ms_changes_no_window(
    stack: Stack, tmp_path: Path
) -> None:
    """The sale's producer held 6 s mid-sale, then sending what it held at once: within
    `idle_ms` (10 s) no input counts idle, so no window closes over the held events. With
    `idle_ms` 2 s this run comes out short (docs/architecture.md, "Event time")."""
    sale = scenario(events=30_000)
    row = crash_run(
        stack, tmp_path, sale, "stall", 1, NOW, seed=7, fault_every_s=20, check_stock=False
    )
    assert row["faults"] == "1 producer stall", row
    assert outcome(row) == EXACT and alerts_delivered(row), row


def test_a_broker_stopped_and_started_mid_sale_loses_nothing_and_writes_nothing_twice(
    stack: Stack, tmp_path: Path
) -> None:
    """The dev stack's broker stopped for 10 s while the sale is produced: the worker and its
    stage-1 process ride it out (their producers retry, idempotent), and every window comes
    out once, equal to the truth, and every stock key is exact."""
    sale = scenario(events=30_000)
    row = crash_run(
        stack, tmp_path, sale, "broker", 1, NOW, seed=7, fault_every_s=20, broker_down_s=10
    )
    assert row["faults"] == "1 broker restart", row
    assert outcome(row) == EXACT and alerts_delivered(row), row
    assert row["stock keys wrong"] == f"0 of {len(sale.truth.inventory)}", row


def test_alertmanager_cut_off_then_stopped_with_a_kill_in_each_outage_loses_no_alert(
    stack: Stack, tmp_path: Path
) -> None:
    """Alertmanager away for 15 s twice: first cut off (it keeps its alerts: a resolution
    the killed worker had queued must still reach it), then stopped (it forgets them: the
    worker's re-sends bring them back). At the end it holds exactly the alerts firing (there
    are some: the sale sells hot SKUs out); windows and stock stay exact."""
    sale = scenario(events=30_000)
    # seed 6: cut off, then stopped; static membership: no 60 s session timeout per kill
    row = crash_run(stack, tmp_path, sale, "alertmanager", 2, STATIC, seed=6, fault_every_s=20,
                    alertmanager_down_s=15)  # fmt: skip
    assert row["faults"] == (
        "1 alertmanager cut off with a kill, 1 alertmanager stopped with a kill"
    ), row
    assert row["alerts firing"] > 0, row
    assert alerts_delivered(row), row
    assert outcome(row) == EXACT, row
    assert row["stock keys wrong"] == f"0 of {len(sale.truth.inventory)}", row
