"""`make demo`: a worker on the local stack, simulated Double 11 traffic, a live summary.

Runs `python -m streams worker` (registered with the stack's Prometheus), then the
simulator at 20x event-time speed with a sell-out and a payment outage injected, and shows
the worker in the live war room (`salewatch top`; plain lines every few seconds when
stdout is not a terminal). `q` or Ctrl-C stops the worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from simulator import Incident, ScenarioConfig, generate, produce
from warroom.top import watch

REPO = Path(__file__).resolve().parents[1]
STACK_ENV = REPO / ".stack" / "env.json"
WEB_PORT = int(os.environ.get("SALEWATCH_WEB_PORT", "6066"))
SPEED = 20.0


def wait_healthy(worker: subprocess.Popen[bytes], log: Path, port: int) -> None:
    for _ in range(120):
        if worker.poll() is not None:
            sys.exit(f"the worker stopped; see {log}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return
        time.sleep(0.5)
    sys.exit(f"the worker did not become healthy; see {log}")


def start_worker(
    stack: dict[str, str], log: Path, port: int, **settings: str
) -> subprocess.Popen[bytes]:
    """`python -m streams worker` on the local stack, logging to `log`; `settings` are
    SALEWATCH_* variables (`app_id="x"` sets SALEWATCH_APP_ID) over the stack's Kafka and
    Alertmanager."""
    settings = {"alertmanager_url": stack["alertmanager_url"], **settings}
    env = {
        **os.environ,
        "SALEWATCH_KAFKA_BOOTSTRAP": stack["kafka_bootstrap"],
        "SALEWATCH_WEB_PORT": str(port),
        **{f"SALEWATCH_{name.upper()}": value for name, value in settings.items()},
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "-l", "info"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # clean up as for Ctrl-C
    stack = json.loads(STACK_ENV.read_text())
    log = REPO / ".stack" / "logs" / "demo-worker.log"
    target = Path(stack["targets_dir"]) / "demo.json"
    worker = start_worker(stack, log, WEB_PORT)
    target.write_text(json.dumps([{"targets": [f"127.0.0.1:{WEB_PORT}"]}]))
    try:
        wait_healthy(worker, log, WEB_PORT)
        config = ScenarioConfig(
            seed=int(time.time()) % 1000,
            duration_s=1800,
            base_rate=300,  # enough payment attempts per window for the outage to page
            incidents=(Incident("sellout", 420, 900), Incident("payment_outage", 1200, 1500)),
        )
        scenario = generate(config)
        print(f"""
salewatch is running.
  worker    http://127.0.0.1:{WEB_PORT}/metrics   /health   /api/windows/store-000/app
  Prometheus   {stack["prometheus_url"]}   (job="salewatch")
  Alertmanager {stack["alertmanager_url"]}
  worker log   {log}
Producing {len(scenario):,} simulated events ({config.duration_s / 60:.0f} min of Double 11
around midnight, with a sell-out and a payment outage) at {SPEED:.0f}x speed. q or Ctrl-C stops.
""")
        producer = threading.Thread(
            target=produce,
            args=(scenario, stack["kafka_bootstrap"]),
            kwargs={"speed": SPEED},
            daemon=True,
        )
        producer.start()

        def simulation() -> str:
            if producer.is_alive():
                return "simulation running"
            return "simulation finished; the worker keeps running"

        watch(f"http://127.0.0.1:{WEB_PORT}", note=simulation)
    except KeyboardInterrupt:
        pass
    finally:
        target.unlink(missing_ok=True)
        worker.terminate()
        worker.wait(30)


if __name__ == "__main__":
    main()
