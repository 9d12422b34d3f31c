"""docker-compose.yml is valid Compose and consistent with the repo (no Docker needed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from jsonschema import Draft7Validator

from tests.support.stack import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
SCHEMA_FILE = REPO / "tests" / "data" / "compose-spec.json"
COMPOSE_PROMETHEUS = REPO / "stack" / "compose" / "prometheus.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


def bind_sources(service: dict[str, Any]) -> list[str]:
    """Local paths a service mounts: short syntax `./src:/dst[:ro]` or long `type: bind`."""
    sources = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/", "~")):
                sources.append(source)
        elif volume.get("type") == "bind":
            sources.append(volume["source"])
    return sources


def test_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = Draft7Validator(json.loads(SCHEMA_FILE.read_text()))
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(compose)
    ]
    assert errors == []


def test_bind_mounts_and_build_context_exist_in_the_repo(compose: dict[str, Any]) -> None:
    missing = []
    for name, service in compose["services"].items():
        for source in bind_sources(service):
            assert not source.startswith(("/", "~")), f"{name}: absolute path {source}"
            if not (REPO / source).exists():
                missing.append(f"{name}: {source}")
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            if not (REPO / context / (dockerfile or "Dockerfile")).is_file():
                missing.append(f"{name}: build {context}/{dockerfile or 'Dockerfile'}")
    assert missing == []


def test_healthy_dependencies_have_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        for dependency, spec in depends_on.items() if isinstance(depends_on, dict) else []:
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"


def test_ports_are_published_on_loopback_only(compose: dict[str, Any]) -> None:
    # A dev stack on a laptop must not expose Kafka or unauthenticated UIs to the network.
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_prometheus_scrapes_and_alerts_compose_services(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(COMPOSE_PROMETHEUS.read_text())
    hosts = {
        target.rsplit(":", 1)[0]
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for manager in config["alerting"]["alertmanagers"]:
        hosts |= {t.rsplit(":", 1)[0] for s in manager["static_configs"] for t in s["targets"]}
    assert hosts - {"localhost"} <= set(compose["services"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["salewatch"]["static_configs"][0]["targets"] == ["worker:6066"]


def test_grafana_datasources_point_at_compose_services(compose: dict[str, Any]) -> None:
    datasources = REPO / "grafana" / "provisioning" / "datasources"
    files = sorted(datasources.glob("*.y*ml"))
    if not files:
        pytest.skip("no Grafana datasource provisioning yet")
    for path in files:
        for source in yaml.safe_load(path.read_text()).get("datasources", []):
            host = urlsplit(source["url"]).hostname
            assert host in compose["services"], f"{path.name}: {source['url']}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_compose_prometheus_config_is_valid() -> None:
    # --syntax-only: the rule files only exist inside the container.
    result = subprocess.run(
        ["promtool", "check", "config", "--syntax-only", str(COMPOSE_PROMETHEUS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
