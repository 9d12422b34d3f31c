"""Find or start the local dev stack that integration tests talk to."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENV_FILE = REPO / ".stack" / "env.json"


@dataclass(frozen=True)
class Stack:
    kafka_bootstrap: str
    prometheus_url: str
    alertmanager_url: str
    targets_dir: Path


def ensure_stack() -> Stack:
    """`devstack.py up` is idempotent: a quick health check when the stack already runs."""
    subprocess.run([sys.executable, str(REPO / "stack" / "devstack.py"), "up"], check=True)
    env = json.loads(ENV_FILE.read_text())
    return Stack(
        kafka_bootstrap=env["kafka_bootstrap"],
        prometheus_url=env["prometheus_url"],
        alertmanager_url=env["alertmanager_url"],
        targets_dir=Path(env["targets_dir"]),
    )
