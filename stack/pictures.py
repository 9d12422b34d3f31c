"""Regenerate the README's pictures: the live view as text, the war room's Grafana panels
and the post-sale review's charts.

    python stack/pictures.py        # needs the local stack (make stack-up) and tmux

Replays a simulated Double 11 (23:50 to 00:10, the midnight rush, a flash sale, a sell-out
that lasts to the end, a SKU selling down and a payment outage) at 20x speed into a worker
of its own (fresh topics, no Alertmanager) that the stack's Prometheus scrapes, captures
`salewatch top` from tmux into docs/warroom-top.txt, runs every war-room panel's queries
against Prometheus and draws the panels into docs/dashboards/ (grafana/panel_pictures.py),
builds `salewatch review` with the campaign's phases shaded and copies its charts to
docs/review/. Then it stops the worker, unregisters it and deletes its topics.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC
from pathlib import Path

from demo import REPO, SPEED, STACK_ENV, start_worker, wait_healthy
from kafka import KafkaAdminClient  # type: ignore[import-untyped]

from grafana.dashboards import OUTPUT_DIR as DASHBOARDS
from grafana.panel_pictures import draw_dashboard
from grafana.queries import MACROS, PanelQueries
from simulator import FlashSale, Incident, ScenarioConfig, generate, produce
from warroom.review.charts import CHARTS

DOCS = REPO / "docs"
SCREEN = (150, 40)  # the terminal the live view is captured from
# the replay lasts a minute of wall clock: rates over 10 s (10 scrapes), one point a second
REPLAY_MACROS = {**MACROS, "__rate_interval": "10s", "__interval": "1s"}
SCRAPES_S = 5.0  # after the last window: the final counts reach Prometheus
CAMPAIGN = """\
phases:
  - name: midnight rush
    start: 2026-11-11T00:00:00+08:00
    end: 2026-11-11T00:02:00+08:00
    traffic_multiplier: 20
    baseline: hold
  - name: flash sale (store-000)
    start: 2026-11-11T00:05:00+08:00
    end: 2026-11-11T00:08:00+08:00
    stores: ["store-000"]
    traffic_multiplier: 3
"""
CONFIG = ScenarioConfig(
    seed=11,
    duration_s=1200,
    base_rate=300,  # enough payment attempts per window for the outage to page
    flash_sales=(FlashSale(start_s=900.0, end_s=1080.0),),
    incidents=(
        Incident("sellout", 240, None),
        Incident("selldown", 600, None, store=1),
        Incident("payment_outage", 960, 1140),
    ),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def windows_closed(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    return sum(float(x.split()[1]) for x in lines if x.startswith("salewatch_windows_closed_total"))


def draw_warroom(stack: dict[str, str], run: str, start: float, end: float) -> list[Path]:
    """The war room's panels from the generated dashboard JSON, queried over the replay."""
    board = json.loads((DASHBOARDS / "salewatch-warroom.json").read_text())
    queries = PanelQueries(stack["prometheus_url"], run=run, macros=REPLAY_MACROS)
    return draw_dashboard(board, queries, (start, end, 1.0), DOCS / "dashboards", UTC)


def main() -> None:
    stack = json.loads(STACK_ENV.read_text())
    run = f"pictures-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="salewatch-pictures-"))
    campaign = work / "campaign.yml"
    campaign.write_text(CAMPAIGN)
    port = free_port()
    worker = start_worker(
        stack, work / "worker.log", port, app_id=run, topic_prefix=f"{run}.shop.",
        output_prefix=f"{run}.salewatch.", data_dir=str(work / "data"),
        campaign_file=str(campaign), alertmanager_url="",
    )  # fmt: skip
    target = Path(stack["targets_dir"]) / f"{run}.json"  # scraped, labelled with the run
    target.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"run": run}}]))
    tmux = ["tmux", "-L", run]
    try:
        wait_healthy(worker, work / "worker.log", port)
        scenario = generate(CONFIG)
        print(f"producing {len(scenario):,} events at {SPEED:.0f}x", flush=True)
        started = time.time()
        # paced, so the scrapes see the sale unfold (the panels' rates)
        produce(scenario, stack["kafka_bootstrap"], topic_prefix=f"{run}.shop.", speed=SPEED)
        while windows_closed(port) < len(scenario.truth.windows):
            time.sleep(1)
        time.sleep(SCRAPES_S)
        drawn = draw_warroom(stack, run, started, time.time())
        print(f"wrote {len(drawn)} pictures of the war room into docs/dashboards/")
        top = f"{sys.executable} -m streams.runtime.cli top --url http://127.0.0.1:{port}"
        subprocess.run([*tmux, "new-session", "-d", "-x", str(SCREEN[0]), "-y", str(SCREEN[1]),
                        "-c", str(REPO), top], check=True)  # fmt: skip
        time.sleep(5)  # a few refreshes
        screen = subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True,
                                check=True).stdout  # fmt: skip
        lines = [line.rstrip() for line in screen.splitlines()]
        (DOCS / "warroom-top.txt").write_text("\n".join(lines).rstrip() + "\n")
        review = work / "review"
        subprocess.run(
            [sys.executable, "-m", "streams.runtime.cli", "review", "--kafka",
             stack["kafka_bootstrap"], "--output-prefix", f"{run}.salewatch.", "--campaign",
             str(campaign), "--from", "2026-11-10T23:50:00+08:00", "--out", str(review)],
            cwd=REPO, check=True,
        )  # fmt: skip
        (DOCS / "review").mkdir(exist_ok=True)
        for chart in CHARTS:
            shutil.copy(review / chart, DOCS / "review" / chart)
        print(f"wrote docs/warroom-top.txt and docs/review/ ({', '.join(CHARTS)})")
    finally:
        target.unlink(missing_ok=True)
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        worker.terminate()
        worker.wait(30)
        admin = KafkaAdminClient(bootstrap_servers=stack["kafka_bootstrap"])
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(run)])
        admin.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
