"""stack/devstack.py: pure parts without processes, then the running stack (integration)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.support.stack import REPO, Stack

DEVSTACK = REPO / "stack" / "devstack.py"


def load_devstack() -> ModuleType:
    # stack/ is a folder of tools, not a package: load the script as a module.
    spec = importlib.util.spec_from_file_location("salewatch_devstack", DEVSTACK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


devstack = load_devstack()


def parse_properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")


def run_devstack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEVSTACK), *args], capture_output=True, text=True, check=False
    )


# --------------------------------------------------------------------------- settings


def test_defaults() -> None:
    settings = devstack.load_settings({})
    assert settings.kafka_version == "3.9.1"
    assert (settings.kafka_port, settings.controller_port) == (19092, 19093)
    assert (settings.prometheus_port, settings.alertmanager_port) == (19090, 19094)
    assert devstack.env_document(settings) == {
        "kafka_bootstrap": "127.0.0.1:19092",
        "prometheus_url": "http://127.0.0.1:19090",
        "alertmanager_url": "http://127.0.0.1:19094",
        "targets_dir": str(REPO / ".stack" / "targets"),
        "auth_targets_dir": str(REPO / ".stack" / "targets-auth"),
        "scrape_token_file": str(REPO / ".stack" / "secrets" / "scrape-token"),
    }
    assert settings.secure_kafka_port == 19096


def test_the_secure_broker_requires_tls_sasl_and_a_client_certificate(tmp_path: Path) -> None:
    settings = devstack.load_settings({})
    credentials = {"password": "p" * 36, "keystore_password": "k" * 36}
    props = parse_properties(
        devstack.secure_server_properties(settings, tmp_path / "broker.p12", credentials)
    )
    assert props["listeners"].startswith("SASL_SSL://127.0.0.1:19096,")
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:19096,BROKER://127.0.0.1:19098"
    assert props["listener.name.sasl_ssl.ssl.client.auth"] == "required"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512,PLAIN"
    # the dev broker's own settings, apart from its listeners and data
    plain = parse_properties(devstack.server_properties(settings))
    for key in ("auto.create.topics.enable", "transaction.state.log.replication.factor"):
        assert props[key] == plain[key]
    assert props["log.dirs"] != plain["log.dirs"]


def test_controller_port_follows_the_kafka_port() -> None:
    settings = devstack.load_settings({"SALEWATCH_STACK_KAFKA_PORT": "29092"})
    assert settings.controller_port == 29093


def test_a_bad_port_names_its_variable() -> None:
    with pytest.raises(devstack.StackError, match="SALEWATCH_STACK_PROMETHEUS_PORT"):
        devstack.load_settings({"SALEWATCH_STACK_PROMETHEUS_PORT": "nine"})


# --------------------------------------------------------------------------- generated config


@pytest.mark.parametrize("version", ["3.9.1", "4.1.1"])
def test_server_properties_single_node_on_loopback(version: str) -> None:
    settings = devstack.load_settings({"SALEWATCH_KAFKA_VERSION": version})
    props = parse_properties(devstack.server_properties(settings))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["auto.create.topics.enable"] == "true"
    assert props["num.partitions"] == "4"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_prometheus_config_scrapes_file_targets_and_alerts_our_alertmanager() -> None:
    settings = devstack.load_settings({"SALEWATCH_STACK_ALERTMANAGER_PORT": "29094"})
    config = yaml.safe_load(devstack.prometheus_config(settings))
    assert config["global"]["scrape_interval"] == "1s"
    assert config["rule_files"] == [str(REPO / "alerts" / "rules" / "*.yml")]
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["127.0.0.1:29094"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    files = jobs["salewatch"]["file_sd_configs"][0]["files"]
    assert files == [str(REPO / ".stack" / "targets" / "*.json")]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(devstack.prometheus_config(devstack.load_settings({})))
    result = subprocess.run(
        ["promtool", "check", "config", "--syntax-only", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool not installed")
def test_alertmanager_variant_routes_the_same_and_delivers_nothing(tmp_path: Path) -> None:
    shipped_file = REPO / "alerts" / "alertmanager.yml"
    variant = tmp_path / "alertmanager.yml"
    variant.write_text(
        devstack.dev_alertmanager_config(shipped_file.read_text(), shipped_file.parent)
    )
    result = subprocess.run(
        ["amtool", "check-config", str(variant)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 templates" not in result.stdout  # template paths made absolute
    shipped, derived = yaml.safe_load(shipped_file.read_text()), yaml.safe_load(variant.read_text())
    assert derived["route"] == shipped["route"]
    assert derived["inhibit_rules"] == shipped["inhibit_rules"]
    assert derived["receivers"] == [{"name": r["name"]} for r in shipped["receivers"]]


def test_alertmanager_variant_needs_receivers_last() -> None:
    with pytest.raises(devstack.StackError, match="last top-level key"):
        devstack.dev_alertmanager_config("receivers:\n  - name: x\nroute: {}\n", REPO)


def test_cluster_ids_look_like_kafka_uuids() -> None:
    for _ in range(200):
        cluster_id = devstack.new_cluster_id()
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")


# --------------------------------------------------------------------------- ports and probes


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_taken_port_is_reported_with_its_variable(listener: int) -> None:
    settings = devstack.load_settings({"SALEWATCH_STACK_PROMETHEUS_PORT": str(listener)})
    prometheus = next(s for s in devstack.services(settings) if s.name == "prometheus")
    with pytest.raises(devstack.StackError, match="SALEWATCH_STACK_PROMETHEUS_PORT"):
        devstack.check_ports_free(prometheus)


def test_kafka_probe_is_false_for_something_that_is_not_kafka(listener: int) -> None:
    assert devstack.kafka_answers(listener) is False  # accepts, never answers: times out


# --------------------------------------------------------------------------- installing


def test_without_root_the_install_command_is_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devstack.shutil, "which", lambda name: "/usr/bin/apt-get"
                        if name == "apt-get" else None)  # fmt: skip
    monkeypatch.setattr(devstack.os, "geteuid", lambda: 1000)
    with pytest.raises(devstack.StackError, match="apt-get install -y --no-install-recommends"):
        devstack.ensure_debian_tools()


def test_as_root_apt_runs_with_service_starts_blocked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    installed: set[str] = set()
    calls: list[tuple[list[str], bool]] = []
    policy = tmp_path / "policy-rc.d"

    def fake_run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append((argv, policy.exists()))
        if "install" in argv:
            installed.update(argv[argv.index("--no-install-recommends") + 1 :])
        return subprocess.CompletedProcess(argv, 0)

    def fake_which(name: str) -> str | None:
        return "/usr/bin/" + name if name == "apt-get" or name in installed else None

    monkeypatch.setattr(devstack.shutil, "which", fake_which)
    monkeypatch.setattr(devstack.os, "geteuid", lambda: 0)
    monkeypatch.setattr(devstack.subprocess, "run", fake_run)
    monkeypatch.setattr(devstack, "POLICY_RC_D", policy)
    devstack.ensure_debian_tools()
    assert [argv[:2] for argv, _ in calls] == [["apt-get", "update"], ["apt-get", "install"]]
    assert "--no-install-recommends" in calls[1][0]
    assert all(blocked for _, blocked in calls)  # postinst may not start the packaged daemons
    assert not policy.exists()  # and the block is lifted afterwards


# --------------------------------------------------------------------------- the running stack


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())


@pytest.mark.integration
def test_status_reports_every_service_healthy(stack: Stack) -> None:
    result = run_devstack("status")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("kafka", "prometheus", "alertmanager"):
        assert any(line.split()[:2] == [name, "healthy"] for line in result.stdout.splitlines())


@pytest.mark.integration
def test_a_second_up_is_a_quick_no_op(stack: Stack) -> None:
    result = run_devstack("up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already running" in result.stdout


@pytest.mark.integration
def test_env_file_services_answer(stack: Stack) -> None:
    from kafka import KafkaAdminClient  # only integration runs need a Kafka client

    env = json.loads((REPO / ".stack" / "env.json").read_text())
    admin = KafkaAdminClient(bootstrap_servers=env["kafka_bootstrap"], request_timeout_ms=10_000)
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    assert [broker["port"] for broker in cluster["brokers"]] == [
        int(env["kafka_bootstrap"].rsplit(":", 1)[1])
    ]

    with urllib.request.urlopen(env["prometheus_url"] + "/-/ready", timeout=5) as response:
        assert response.status == 200
    status = http_json(env["alertmanager_url"] + "/api/v2/status")
    assert status["cluster"]["status"] == "disabled"  # no gossip port in dev

    # Prometheus sends to our Alertmanager (discovery may take a few seconds after a reload).
    expected = [env["alertmanager_url"] + "/api/v2/alerts"]
    deadline = time.monotonic() + 15
    while True:
        managers = http_json(env["prometheus_url"] + "/api/v1/alertmanagers")
        urls = [m["url"] for m in managers["data"]["activeAlertmanagers"]]
        if urls == expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert urls == expected
    assert Path(env["targets_dir"]).is_dir()
