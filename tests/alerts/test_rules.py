"""Prometheus rules, their unit tests, the Alertmanager config and the runbook agree.

promtool and amtool come from Debian's `prometheus` and `prometheus-alertmanager` packages
(`make test` installs them through the dev stack); the tests needing them skip, saying so,
only where they are missing. Integration tests talk to the dev stack's Prometheus and
Alertmanager (the `stack` fixture of tests/conftest.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.links import RUNBOOK_BASE_URL, runbook_anchor, runbook_url
from tests.support.stack import Stack

REPO = Path(__file__).resolve().parents[2]
ALERTS_DIR = REPO / "alerts"
RULE_FILES = sorted((ALERTS_DIR / "rules").glob("*.yml"))
RULE_TEST_FILES = sorted((ALERTS_DIR / "tests").glob("*.yml"))
ALERTMANAGER_CONFIG = ALERTS_DIR / "alertmanager.yml"
RUNBOOK = ALERTS_DIR / "runbook.md"

# docs/contract.md §5: the alerts the stream detectors send; each needs a runbook section.
BUSINESS_ALERTS = (
    "StockOut",
    "LowStockSoon",
    "ConversionDrop",
    "PaymentFailureSpike",
    "RefundSurge",
    "TrafficDrop",
)
SEVERITIES = {"critical", "warning", "info", "none"}
ALWAYS_FIRING = {"Watchdog"}  # no pending state to test

Json = dict[str, Any]


# -- helpers --------------------------------------------------------------------------------


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"`{name}` is not installed (Debian package {package}; `make test` installs it)"
        )
    return path


def run_tool(*argv: str) -> str:
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{output}"
    return output


def rule_groups() -> list[Json]:
    return [group for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]]


def alerting_rules() -> list[Json]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def recording_rules() -> list[Json]:
    return [rule for group in rule_groups() for rule in group["rules"] if "record" in rule]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", RUNBOOK.read_text(), flags=re.MULTILINE)
    return {github_slug(heading) for heading in headings}


def alert_rule_tests() -> list[Json]:
    return [
        case
        for path in RULE_TEST_FILES
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]


# -- the tools ------------------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool", "prometheus")
    assert RULE_FILES, "no rule files under alerts/rules/"
    run_tool(promtool, "check", "rules", *map(str, RULE_FILES))


def test_promtool_unit_tests() -> None:
    promtool = require_tool("promtool", "prometheus")
    assert RULE_TEST_FILES, "no promtool tests under alerts/tests/"
    run_tool(promtool, "test", "rules", *map(str, RULE_TEST_FILES))


def test_amtool_check_config() -> None:
    amtool = require_tool("amtool", "prometheus-alertmanager")
    run_tool(amtool, "check-config", str(ALERTMANAGER_CONFIG))


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=Watchdog", "severity=none"], "deadmans-switch"),
        (
            ["alertname=StockOut", "severity=critical", "store_id=s1", "sku=x"],
            "email-digest,page-critical",
        ),
        (
            ["alertname=LowStockSoon", "severity=warning", "store_id=s1", "sku=x"],
            "email-digest,chat-warning",
        ),
        (["alertname=SalewatchWorkerDown", "severity=critical"], "email-digest,page-critical"),
    ],
)
def test_alertmanager_routes(labels: list[str], receiver: str) -> None:
    amtool = require_tool("amtool", "prometheus-alertmanager")
    config = f"--config.file={ALERTMANAGER_CONFIG}"
    run_tool(amtool, "config", "routes", "test", config, f"--verify.receivers={receiver}", *labels)


# -- conventions ----------------------------------------------------------------------------


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda rule: rule["alert"])
def test_alert_rule_conventions(rule: Json) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)*", name), f"{name} is not CamelCase"
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert annotations["runbook_url"] == runbook_url(name), "build it as alerts.links.runbook_url"


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda rule: rule["alert"])
def test_runbook_url_anchor_exists(rule: Json) -> None:
    base, _, anchor = rule["annotations"]["runbook_url"].partition("#")
    assert base == RUNBOOK_BASE_URL
    assert anchor in runbook_anchors(), f"alerts/runbook.md has no section #{anchor}"


@pytest.mark.parametrize("alertname", BUSINESS_ALERTS)
def test_business_alert_has_runbook_section(alertname: str) -> None:
    assert runbook_anchor(alertname) in runbook_anchors(), f"alerts/runbook.md lacks ## {alertname}"


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_firing_and_not_firing_cases(rule: Json) -> None:
    name = rule["alert"]
    cases = [case for case in alert_rule_tests() if case["alertname"] == name]
    assert any(case.get("exp_alerts") for case in cases), f"no firing case for {name}"
    if name not in ALWAYS_FIRING:
        assert any(not case.get("exp_alerts") for case in cases), f"no quiet case for {name}"


@pytest.mark.parametrize("rule", recording_rules(), ids=lambda rule: rule["record"])
def test_recording_rule_names_level_metric_operation(rule: Json) -> None:
    name = rule["record"]
    level, metric, operation = name.split(":")
    assert metric.startswith("salewatch_") and operation, name
    by = re.search(r"\bby \(([^)]*)\)", rule["expr"])
    if by:  # an aggregation keeps exactly the labels its level names
        kept = {label.strip() for label in by.group(1).split(",")}
        assert kept == set(level.split("_")), f"{name} keeps {sorted(kept)}"


def test_recording_rules_are_unit_tested() -> None:
    tested = " ".join(
        case["expr"]
        for path in RULE_TEST_FILES
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("promql_expr_test", [])
    )
    untested = {rule["record"] for rule in recording_rules()} - set(re.findall(r"[\w:]+", tested))
    assert not untested, f"recording rules without a promql_expr_test: {sorted(untested)}"


# -- against the dev stack --------------------------------------------------------------------


def http_json(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return json.loads(text) if text else None


def wait_for(check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    """Poll until `check` returns something truthy; return it, or fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"condition not met within {timeout_s} s"
            return result
        time.sleep(0.5)


@pytest.mark.integration
def test_stack_prometheus_loads_and_evaluates_the_rules(stack: Stack) -> None:
    expected = {group["name"] for group in rule_groups()}

    def loaded() -> list[Json] | None:
        groups = http_json(f"{stack.prometheus_url}/api/v1/rules")["data"]["groups"]
        return groups if {group["name"] for group in groups} >= expected else None

    groups = wait_for(loaded)
    broken = {
        rule["name"]: rule.get("lastError")
        for group in groups
        if group["name"] in expected
        for rule in group["rules"]
        if rule["health"] == "err"
    }
    assert not broken


@pytest.mark.integration
def test_watchdog_reaches_alertmanager(stack: Stack) -> None:
    """The whole path: rule evaluation in Prometheus -> Alertmanager (-> dead man's switch)."""
    loaded = http_json(f"{stack.alertmanager_url}/api/v2/status")["config"]["original"]
    if "deadmans-switch" not in loaded:
        pytest.skip(
            "the dev stack's Alertmanager runs an older alerts/alertmanager.yml; restart it on "
            "the dev variant: python stack/devstack.py down && python stack/devstack.py up"
        )
    query = urllib.parse.urlencode({"filter": 'alertname="Watchdog"'})
    url = f"{stack.alertmanager_url}/api/v2/alerts?{query}"
    alerts = wait_for(lambda: http_json(url), timeout_s=60)
    assert [receiver["name"] for receiver in alerts[0]["receivers"]] == ["deadmans-switch"]


@pytest.fixture
def post_alerts(stack: Stack) -> Iterator[Callable[[list[Json]], None]]:
    """Posts alerts to the stack's Alertmanager as the detectors do; resolves them after."""
    posted: list[Json] = []

    def post(alerts: list[Json]) -> None:
        posted.extend(alerts)
        http_json(f"{stack.alertmanager_url}/api/v2/alerts", alerts)

    yield post
    ended = datetime.now(UTC).isoformat()
    if posted:
        http_json(
            f"{stack.alertmanager_url}/api/v2/alerts", [{**a, "endsAt": ended} for a in posted]
        )


def business_alert(alertname: str, severity: str, **labels: str) -> Json:
    return {
        "labels": {"alertname": alertname, "severity": severity, "source": "salewatch", **labels},
        "annotations": {"summary": f"test {alertname}", "runbook_url": runbook_url(alertname)},
        "endsAt": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
    }


def alert_states(stack: Stack, store_id: str) -> dict[tuple[str, str, str], str]:
    """(alertname, sku or stage, channel) -> Alertmanager state of the store's alerts."""
    query = urllib.parse.urlencode({"filter": f'store_id="{store_id}"'})
    states = {}
    for alert in http_json(f"{stack.alertmanager_url}/api/v2/alerts?{query}"):
        labels = alert["labels"]
        key = (labels["alertname"], labels.get("sku") or labels["stage"], labels.get("channel", ""))
        states[key] = alert["status"]["state"]
    return states


@pytest.mark.integration
def test_alertmanager_inhibits_as_documented(
    stack: Stack, post_alerts: Callable[[list[Json]], None]
) -> None:
    store = f"pytest-{uuid.uuid4().hex[:8]}"
    post_alerts(
        [
            business_alert("StockOut", "critical", store_id=store, sku="A"),
            business_alert("LowStockSoon", "warning", store_id=store, sku="A"),
            business_alert("LowStockSoon", "warning", store_id=store, sku="B"),
            business_alert(
                "ConversionDrop", "critical", store_id=store, channel="app", stage="pay"
            ),
            business_alert(
                "ConversionDrop", "warning", store_id=store, channel="app", stage="cart"
            ),
            business_alert(
                "ConversionDrop", "warning", store_id=store, channel="web", stage="cart"
            ),
        ]
    )

    def expected() -> dict[tuple[str, str, str], str]:
        # The stack's own Prometheus fires SalewatchWorkerDown while no worker is scraped,
        # and that mutes every warning ConversionDrop: then the web one is muted too.
        workers_down = any_active(stack, "SalewatchWorkerDown")
        return {
            ("StockOut", "A", ""): "active",
            ("LowStockSoon", "A", ""): "suppressed",  # that SKU is out of stock
            ("LowStockSoon", "B", ""): "active",
            ("ConversionDrop", "pay", "app"): "active",
            ("ConversionDrop", "cart", "app"): "suppressed",  # critical of that store x channel
            ("ConversionDrop", "cart", "web"): "suppressed" if workers_down else "active",
        }

    deadline = time.monotonic() + 15
    while (states := alert_states(stack, store)) != expected() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert states == expected()


def any_active(stack: Stack, alertname: str) -> bool:
    query = urllib.parse.urlencode({"filter": f'alertname="{alertname}"', "active": "true"})
    alerts = http_json(f"{stack.alertmanager_url}/api/v2/alerts?{query}")
    return any(alert["status"]["state"] == "active" for alert in alerts)
