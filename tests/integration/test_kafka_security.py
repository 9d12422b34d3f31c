"""The pipeline over SASL_SSL (SCRAM-SHA-512) with mutual TLS: `salewatch emit` sends through
the store SDK, a worker (Faust and stage 1) reads and writes, and every window equals the
ground truth. The broker refuses clients without TLS, without a client certificate or with a
wrong password.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError

from simulator import KeyMode, ScenarioConfig, generate
from streams.contract.kafka_security import KafkaSecurity
from tests.support.kafka import consume
from tests.support.stack import REPO, SecureKafka, Stack
from tests.support.windows import window_differences, window_id
from tests.support.worker import WorkerFactory

pytestmark = pytest.mark.integration

WINDOW_MS = 10_000
GRACE_MS = 2_000


def test_pipeline_over_sasl_ssl_with_mutual_tls(
    stack: Stack, secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    scenario = generate(
        ScenarioConfig(
            seed=3,
            duration_s=60,
            base_rate=40,
            # `salewatch emit` batches per topic and store: with several stores an input
            # partition would read one store's whole minute, then another's (late events)
            stores=1,
            window_ms=WINDOW_MS,
            grace_ms=GRACE_MS,
            key_mode=KeyMode.STORE,
            duplicate_rate=0.02,
            out_of_order_rate=0.0,
            late_rate=0.0,
        )
    )
    truth = scenario.truth
    lines = tmp_path / "events.jsonl"
    lines.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in scenario.events()))

    secure_stack = Stack(
        kafka_bootstrap=secure_kafka.bootstrap,
        prometheus_url=stack.prometheus_url,
        alertmanager_url=stack.alertmanager_url,
        targets_dir=stack.targets_dir,
    )
    client_options = secure_kafka.security.client_options()
    workers = WorkerFactory(secure_stack, tmp_path, kafka_options=client_options)
    kafka_settings = {f"kafka_{name}": value for name, value in secure_kafka.settings.items()}
    try:
        emitted = subprocess.run(
            [sys.executable, "-m", "streams.runtime.cli", "emit", str(lines)],
            cwd=REPO,
            env=workers.env(**kafka_settings),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert emitted.returncode == 0, emitted.stderr
        workers.start(window_ms=WINDOW_MS, grace_ms=GRACE_MS, idle_ms=1_000, **kafka_settings)
        windows_topic = workers.output_topic("windows")
        expected = len(truth.windows)
        consume(secure_kafka.bootstrap, windows_topic, expected, timeout_s=90, **client_options)
        time.sleep(2)  # anything emitted twice would arrive now
        records = consume(
            secure_kafka.bootstrap, windows_topic, expected + 1, timeout_s=4, **client_options
        )
    finally:
        workers.stop_all()
    windows = [orjson.loads(record.value) for record in records]
    keys = [window_id(window) for window in windows]
    assert len(keys) == len(set(keys)), "a window was emitted more than once"
    assert set(keys) == set(truth.windows)
    for window in windows:
        assert window_differences(window, truth.windows[window_id(window)]) == [], window_id(window)


def refused(secure_kafka: SecureKafka, security: KafkaSecurity) -> bool:
    """Whether a client with these settings gets no metadata from the broker."""
    producer = None
    try:
        producer = KafkaProducer(
            bootstrap_servers=secure_kafka.bootstrap,
            max_block_ms=3_000,
            bootstrap_timeout_ms=3_000,
            **security.client_options(),
        )
        producer.partitions_for("salewatch-security-probe")
    except KafkaError:
        return True
    finally:
        if producer is not None:
            producer.close(timeout=1)
    return False


@pytest.mark.parametrize("missing", ["tls", "client certificate", "password"])
def test_the_secure_broker_refuses_a_client_without(
    secure_kafka: SecureKafka, missing: str
) -> None:
    settings = dict(secure_kafka.settings)
    if missing == "tls":
        settings = {"security_protocol": "PLAINTEXT"}
    elif missing == "client certificate":
        del settings["ssl_certfile"], settings["ssl_keyfile"]
    else:
        settings["sasl_password"] = "not-" + settings["sasl_password"]
    assert refused(secure_kafka, KafkaSecurity(**settings))  # type: ignore[arg-type]
    assert not refused(secure_kafka, secure_kafka.security)  # the right one is let in


def test_plain_mechanism_over_tls(secure_kafka: SecureKafka) -> None:
    plain = KafkaSecurity(**{**secure_kafka.settings, "sasl_mechanism": "PLAIN"})  # type: ignore[arg-type]
    assert not refused(secure_kafka, plain)


def test_worker_refuses_to_start_with_incomplete_security(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SALEWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "SALEWATCH_KAFKA_SASL_USERNAME": "salewatch",
    }
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "streams", "worker"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SALEWATCH_KAFKA_SASL_PASSWORD: required with SASL_SSL" in result.stdout + result.stderr
    assert time.monotonic() - started < 30
