"""What people look at, against a real worker fed by a simulated sale with incidents (a
sell-out and a payment outage): `salewatch top` in a real terminal (tmux) shows GMV, the
funnel and the firing alert and quits on `q`; `salewatch review` builds the post-sale report
from the output topics, headless Chromium renders it with its charts, and its totals equal
the simulator's ground truth."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import orjson
import pytest
from matplotlib import image

from simulator import ExpectedAlert, GroundTruth, Incident, ScenarioConfig, generate, produce
from simulator.topics import STAGES
from tests.support.alerts import wait_for
from tests.support.kafka import consume
from tests.support.stack import REPO, Stack
from tests.support.worker import Worker, WorkerFactory

pytestmark = pytest.mark.integration

WINDOW_MS = 10_000
CONFIG = ScenarioConfig(
    seed=21, duration_s=120, base_rate=300, stores=2, skus_per_store=50,
    window_ms=WINDOW_MS, grace_ms=2_000, flash_sales=(), rush_minutes=0,
    incidents=(Incident("sellout", 20, None), Incident("payment_outage", 60, 100)),
)  # fmt: skip


@dataclass
class Sale:
    workers: WorkerFactory
    worker: Worker
    truth: GroundTruth

    @property
    def stockout(self) -> ExpectedAlert:
        return next(a for a in self.truth.expected_alerts if a.alertname == "StockOut")


@pytest.fixture(scope="module")
def sale(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sale]:
    workers = WorkerFactory(stack, tmp_path_factory.mktemp("warroom"))
    scenario = generate(CONFIG)
    produce(scenario, workers.stack.kafka_bootstrap, topic_prefix=workers.topic_prefix)
    try:
        worker = workers.start(window_ms=WINDOW_MS, grace_ms=2_000, idle_ms=2_000)
        yield Sale(workers, worker, scenario.truth)
    finally:
        workers.stop_all()


@pytest.fixture
def tmux(sale: Sale) -> Iterator[list[str]]:
    """tmux on a server of this test's own (`-L`), killed after it."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing: `python stack/devstack.py up` installs it")
    command = ["tmux", "-L", f"salewatch-{sale.workers.run_id}"]
    yield command
    subprocess.run([*command, "kill-server"], capture_output=True)


def test_top_shows_gmv_funnel_and_a_firing_alert_and_quits_on_q(
    sale: Sale, tmux: list[str]
) -> None:
    worker, sku = sale.worker, sale.stockout.labels["sku"]

    def firing() -> bool:
        answer = orjson.loads(worker.get("/api/alerts?alertname=StockOut")[1])
        return any(a["labels"]["sku"] == sku for a in answer["firing"])

    wait_for(firing, timeout_s=90, interval_s=0.5)
    seen: list[Decimal] = []

    def settled() -> Decimal | None:  # the live counter, once every order is processed
        seen.append(_gmv(worker.metrics()))
        return seen[-1] if len(seen) > 4 and seen[-1] == seen[-5] > 0 else None

    gmv = wait_for(settled, timeout_s=60, interval_s=0.5)
    errors = sale.workers.tmp / "top.stderr"
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
        wanted = (expected_gmv, "impression", "click", "StockOut", sku)
        return shown[0] if all(part in shown[0] for part in wanted) else None

    try:
        text = wait_for(screen, timeout_s=30, interval_s=0.5)
    except AssertionError:
        stderr = errors.read_text() if errors.exists() else ""
        raise AssertionError(f"wanted {expected_gmv}; screen:\n{shown[0]}\n{stderr}") from None
    assert "salewatch war room" in text
    for channel in CONFIG.channels:
        assert any(line.lstrip("│ ").startswith(channel) for line in text.splitlines()), channel
    subprocess.run([*tmux, "send-keys", "-t", "top", "q"], check=True)
    deadline = time.monotonic() + 10
    while subprocess.run([*tmux, "has-session", "-t", "top"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "salewatch top did not quit on q"
        time.sleep(0.2)


def test_review_renders_in_chromium_and_its_totals_equal_the_ground_truth(
    sale: Sale, tmp_path: Path
) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is missing: `python stack/devstack.py up` installs it")
    workers, truth = sale.workers, sale.truth
    windows = consume(workers.stack.kafka_bootstrap, workers.output_topic("windows"),
                      len(truth.windows), timeout_s=120)  # fmt: skip
    assert len(windows) == len(truth.windows)
    out = tmp_path / "review"
    subprocess.run(
        [sys.executable, "-m", "streams.runtime.cli", "review",
         "--kafka", workers.stack.kafka_bootstrap, "--output-prefix", workers.output_prefix,
         "--out", str(out)],
        cwd=REPO, check=True, timeout=120,
    )  # fmt: skip
    html = (out / "review.html").read_text()
    page = _Page()
    page.feed(html)

    expected = truth.totals()
    wanted = {stage: str(expected.counts[stage]) for stage in STAGES}
    wanted |= {
        "paid_orders": str(expected.paid_orders),
        "gmv.CNY": str(expected.gmv),
        "payment_failed": str(expected.payment_failed),
        "refund_requested": str(expected.refund_requested),
    }
    assert {name: page.totals[name][0] for name in wanted} == wanted
    assert page.totals["gmv.CNY"][1] == f"{expected.gmv:,.2f}"
    assert page.totals["paid_orders"][1] == f"{expected.paid_orders:,}"
    # the sell-out: its SKU's stock-out with the rate it sold at, and its alert's runbook
    stockouts = page.tables["stockouts"]
    assert any(sale.stockout.labels["sku"] in row for row in stockouts)
    assert page.runbooks and all(link.startswith("https://") for link in page.runbooks)
    assert not page.external_resources, page.external_resources

    for chart in ("sales.png", "funnel.png", "rates.png", "stockouts.png"):
        assert _spread(out / chart) > 0.05, f"{chart} is blank"
    url = (out / "review.html").as_uri()
    browser = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--virtual-time-budget=5000", "--window-size=1200,3000"]  # fmt: skip
    dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120, check=True).stdout  # fmt: skip
    assert 'data-charts-drawn="4"' in dom, dom[:2000]
    shot = tmp_path / "review.png"
    subprocess.run([*browser, f"--screenshot={shot}", url], capture_output=True, timeout=120,
                   check=True)  # fmt: skip
    assert _spread(shot) > 0.05, "the rendered page is blank"


def _gmv(metrics: str) -> Decimal:
    total = Decimal(0)
    for line in metrics.splitlines():
        if line.startswith("salewatch_gmv_total{"):
            total += Decimal(line.rsplit(" ", 1)[1])
    return total


def _spread(png: Path) -> float:
    """Standard deviation of the pixels (0-1): about 0 for a blank image."""
    return float(np.std(image.imread(png)[..., :3]))


class _Page(HTMLParser):
    """The review's totals (`data-total` -> (data-value, text)), table rows by table id,
    runbook links, and anything the page would fetch from elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.totals: dict[str, tuple[str, str]] = {}
        self.tables: dict[str, list[str]] = {}
        self.runbooks: list[str] = []
        self.external_resources: list[str] = []
        self._total: tuple[str, str] | None = None
        self._table: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "td" and "data-total" in found:
            self._total = (found["data-total"] or "", found.get("data-value") or "")
            self._text = ""
        if tag == "table" and found.get("id"):
            self._table = found["id"]
            self.tables[self._table] = []
        if tag == "tr":
            self._text = ""
        if tag == "a" and (found.get("href") or "").count("runbook"):
            self.runbooks.append(found["href"] or "")
        source = found.get("src") or (found.get("href") if tag == "link" else None)
        if source and not source.startswith("data:"):
            self.external_resources.append(source)

    def handle_data(self, data: str) -> None:
        self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._total is not None:
            name, value = self._total
            self.totals[name] = (value, self._text.strip())
            self._total = None
        if tag == "tr" and self._table is not None:
            self.tables[self._table].append(self._text)
        if tag == "table":
            self._table = None
