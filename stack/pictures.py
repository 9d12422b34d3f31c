"""Regenerate the README's pictures: the live view as text and the post-sale review's charts.

    python stack/pictures.py        # needs the local stack (make stack-up) and tmux

Replays a simulated Double 11 (23:50 to 00:10, the midnight rush, a flash sale, a sell-out
that lasts to the end and a payment outage) into a worker of its own (fresh topics, no
Alertmanager), captures `salewatch top` from tmux into docs/warroom-top.txt, builds
`salewatch review` with the campaign's phases shaded and copies its charts to docs/review/.
Then it stops the worker and deletes its topics.
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
from pathlib import Path

from demo import REPO, STACK_ENV, start_worker, wait_healthy
from kafka import KafkaAdminClient  # type: ignore[import-untyped]

from simulator import FlashSale, Incident, ScenarioConfig, generate, produce
from warroom.review.charts import CHARTS

DOCS = REPO / "docs"
SCREEN = (150, 40)  # the terminal the live view is captured from
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
    incidents=(Incident("sellout", 240, None), Incident("payment_outage", 960, 1140)),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def windows_closed(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    return sum(float(x.split()[1]) for x in lines if x.startswith("salewatch_windows_closed_total"))


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
    tmux = ["tmux", "-L", run]
    try:
        wait_healthy(worker, work / "worker.log", port)
        scenario = generate(CONFIG)
        print(f"producing {len(scenario):,} events", flush=True)
        produce(scenario, stack["kafka_bootstrap"], topic_prefix=f"{run}.shop.")
        while windows_closed(port) < len(scenario.truth.windows):
            time.sleep(1)
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
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        worker.terminate()
        worker.wait(30)
        admin = KafkaAdminClient(bootstrap_servers=stack["kafka_bootstrap"])
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(run)])
        admin.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
