"""Find or start the local dev stack that integration tests talk to."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.contract.kafka_security import KafkaSecurity

REPO = Path(__file__).resolve().parents[2]
ENV_FILE = REPO / ".stack" / "env.json"
SECURE_ENV_FILE = REPO / ".stack" / "secure-env.json"


@dataclass(frozen=True)
class Stack:
    kafka_bootstrap: str
    prometheus_url: str
    alertmanager_url: str
    targets_dir: Path
    # workers requiring the bearer token in `scrape_token_file` register here
    auth_targets_dir: Path | None = None
    scrape_token_file: Path | None = None


def ensure_stack() -> Stack:
    """`devstack.py up` is idempotent: a quick health check when the stack already runs."""
    subprocess.run([sys.executable, str(REPO / "stack" / "devstack.py"), "up"], check=True)
    env = json.loads(ENV_FILE.read_text())
    return Stack(
        kafka_bootstrap=env["kafka_bootstrap"],
        prometheus_url=env["prometheus_url"],
        alertmanager_url=env["alertmanager_url"],
        targets_dir=Path(env["targets_dir"]),
        auth_targets_dir=Path(env["auth_targets_dir"]),
        scrape_token_file=Path(env["scrape_token_file"]),
    )


def stop_service(name: str) -> None:
    """Stop only one service of the dev stack, `kafka` or `alertmanager`, its data kept (an
    outage); `ensure_stack()` starts it again. Everything on this machine using it sees the
    outage."""
    command = [sys.executable, str(REPO / "stack" / "devstack.py"), f"stop-{name}"]
    subprocess.run(command, check=True)


@dataclass(frozen=True)
class SecureKafka:
    """The dev stack's second broker: SASL_SSL (SCRAM-SHA-512 or PLAIN) with mutual TLS."""

    bootstrap: str
    settings: dict[str, str]  # SALEWATCH_KAFKA_* settings, lower case without the prefix

    @property
    def security(self) -> KafkaSecurity:
        return KafkaSecurity(**self.settings)  # type: ignore[arg-type]

    def client_options(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap, **self.security.client_options()}


def ensure_secure_kafka() -> SecureKafka:
    """`devstack.py up-secure` is idempotent too; the first start makes the certificates."""
    subprocess.run([sys.executable, str(REPO / "stack" / "devstack.py"), "up-secure"], check=True)
    settings = json.loads(SECURE_ENV_FILE.read_text())
    return SecureKafka(bootstrap=settings.pop("kafka_bootstrap"), settings=settings)
