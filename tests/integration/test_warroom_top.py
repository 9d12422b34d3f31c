"""`salewatch top` in a real terminal (tmux) against a worker fed by the simulator: GMV,
the funnel and a firing alert are on the screen, and `q` quits."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal

import orjson
import pytest

from simulator import Incident, ScenarioConfig, generate, produce
from tests.support.alerts import wait_for
from tests.support.stack import REPO
from tests.support.worker import WorkerFactory

pytestmark = pytest.mark.integration


@pytest.fixture
def tmux(workers: WorkerFactory) -> Iterator[list[str]]:
    """tmux on a server of this test's own (`-L`), killed after it."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing: `python stack/devstack.py up` installs it")
    command = ["tmux", "-L", f"salewatch-{workers.run_id}"]
    yield command
    subprocess.run([*command, "kill-server"], capture_output=True)


def test_top_shows_gmv_funnel_and_a_firing_alert_and_quits_on_q(
    workers: WorkerFactory, tmux: list[str]
) -> None:
    config = ScenarioConfig(
        seed=21, duration_s=120, base_rate=300, stores=2, skus_per_store=50,
        window_ms=10_000, grace_ms=2_000, flash_sales=(), rush_minutes=0,
        incidents=(Incident("sellout", 20, None),),
    )  # fmt: skip
    scenario = generate(config)
    produce(scenario, workers.stack.kafka_bootstrap, topic_prefix=workers.topic_prefix)
    worker = workers.start(window_ms=10_000, grace_ms=2_000, idle_ms=2_000)
    stockout = next(a for a in scenario.truth.expected_alerts if a.alertname == "StockOut")

    def firing() -> bool:
        answer = orjson.loads(worker.get("/api/alerts?alertname=StockOut")[1])
        return any(a["labels"]["sku"] == stockout.labels["sku"] for a in answer["firing"])

    wait_for(firing, timeout_s=90, interval_s=0.5)
    seen: list[Decimal] = []

    def settled() -> Decimal | None:  # the live counter, once every order is processed
        seen.append(_gmv(worker.metrics()))
        return seen[-1] if len(seen) > 4 and seen[-1] == seen[-5] > 0 else None

    gmv = wait_for(settled, timeout_s=60, interval_s=0.5)

    errors = workers.tmp / "top.stderr"
    # pytest exports COLUMNS=80 and LINES=24, which rich would believe over the terminal
    top = (
        f"env -u COLUMNS -u LINES {sys.executable} -m streams.runtime.cli top"
        f" --url {worker.url} 2>{errors}"
    )
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "top", "-x", "200", "-y", "50", "-c", str(REPO), top],
        check=True,
    )
    expected_gmv = f"CNY {gmv:,.2f}"

    shown = [""]

    def screen() -> str | None:
        shown[0] = subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "top"], capture_output=True, text=True
        ).stdout
        wanted = (expected_gmv, "impression", "click", "StockOut", stockout.labels["sku"])
        return shown[0] if all(part in shown[0] for part in wanted) else None

    try:
        text = wait_for(screen, timeout_s=30, interval_s=0.5)
    except AssertionError:
        stderr = errors.read_text() if errors.exists() else ""
        raise AssertionError(f"wanted {expected_gmv}; screen:\n{shown[0]}\n{stderr}") from None
    assert "salewatch war room" in text
    for channel in config.channels:
        assert any(line.lstrip("│ ").startswith(channel) for line in text.splitlines()), channel
    subprocess.run([*tmux, "send-keys", "-t", "top", "q"], check=True)
    deadline = time.monotonic() + 10
    while subprocess.run([*tmux, "has-session", "-t", "top"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "salewatch top did not quit on q"
        time.sleep(0.2)


def _gmv(metrics: str) -> Decimal:
    total = Decimal(0)
    for line in metrics.splitlines():
        if line.startswith("salewatch_gmv_total{"):
            total += Decimal(line.rsplit(" ", 1)[1])
    return total
