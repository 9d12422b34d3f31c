"""Dashboards as code: committed JSON is current, panels are sound, every query runs.

The integration test sends every panel and variable query to the dev stack's real
Prometheus (the `stack` fixture of tests/conftest.py); a syntax error or an unknown
function fails there. Grafana itself only runs in docker-compose.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.links import PLATFORM_DASHBOARD_UID, WARROOM_DASHBOARD_UID
from grafana import dashboards
from grafana.dashboards import build_dashboards, main, render
from streams.funnel.aggregates import STAGES
from tests.support.stack import Stack

REPO = Path(__file__).resolve().parents[2]
PROVISIONING = REPO / "grafana" / "provisioning"
PLATFORM_RULES = REPO / "alerts" / "rules" / "platform.yml"

Json = dict[str, Any]

# What Grafana substitutes before a query reaches Prometheus.
GRAFANA_BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "topn": "10",
    "sale_seconds": "3600",
}
ALL_VALUES = ".*"


def boards() -> list[Json]:
    return list(build_dashboards().values())


def panels(board: Json) -> list[Json]:
    return [panel for panel in board["panels"] if panel["type"] != "row"]


def all_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every dashboard."""
    return [
        (f"{board['uid']}: {panel['title']}", target["expr"])
        for board in boards()
        for panel in panels(board)
        for target in panel["targets"]
    ]


def variables(board: Json) -> dict[str, Json]:
    return {variable["name"]: variable for variable in board["templating"]["list"]}


def substitute(expr: str) -> str:
    """The query as Grafana sends it with `All` selected."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return GRAFANA_BUILTINS.get(name, ALL_VALUES)

    result = re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)
    assert "$" not in result, result
    return result


def alert_expr(alertname: str) -> str:
    rules = yaml.safe_load(PLATFORM_RULES.read_text())["groups"][0]["rules"]
    return str(next(rule["expr"] for rule in rules if rule.get("alert") == alertname))


# -- generated files ------------------------------------------------------------------------


def test_committed_json_is_current() -> None:
    assert main(["--check"]) == 0, "run `python -m grafana.dashboards` and commit the JSON"


def test_module_entry_point_checks(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "grafana.dashboards", "--output-dir", str(tmp_path)]
    subprocess.run(command, cwd=REPO, check=True, timeout=60)
    assert subprocess.run([*command, "--check"], cwd=REPO, timeout=60).returncode == 0


def test_check_reports_stale_missing_and_unexpected_files(tmp_path: Path) -> None:
    out = ["--output-dir", str(tmp_path)]
    assert main([*out, "--check"]) == 1  # missing
    assert main(out) == 0
    assert main([*out, "--check"]) == 0
    stale = tmp_path / f"{WARROOM_DASHBOARD_UID}.json"
    stale.write_text(stale.read_text().replace("war room", "war-room"))
    assert main([*out, "--check"]) == 1
    assert main(out) == 0
    (tmp_path / "hand-made.json").write_text("{}")
    assert main([*out, "--check"]) == 1


def test_output_is_deterministic() -> None:
    first = {name: render(board) for name, board in build_dashboards().items()}
    second = {name: render(board) for name, board in build_dashboards().items()}
    assert first == second
    board = next(iter(build_dashboards().values()))
    assert render(board) == json.dumps(board, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# -- structure ------------------------------------------------------------------------------


def test_uids_are_fixed() -> None:
    assert {name: board["uid"] for name, board in build_dashboards().items()} == {
        "salewatch-warroom.json": "salewatch-warroom",
        "salewatch-platform.json": "salewatch-platform",
    }
    assert {WARROOM_DASHBOARD_UID, PLATFORM_DASHBOARD_UID} == {
        "salewatch-warroom",
        "salewatch-platform",
    }


@pytest.mark.parametrize("board", boards(), ids=lambda board: board["uid"])
def test_panel_ids_unique_and_every_panel_queries(board: Json) -> None:
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        assert panel["targets"], panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


@pytest.mark.parametrize("board", boards(), ids=lambda board: board["uid"])
def test_panels_fit_the_grid_without_overlap(board: Json) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= dashboards.GRID_WIDTH, panel["title"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine


@pytest.mark.parametrize("board", boards(), ids=lambda board: board["uid"])
def test_datasource_variable_drives_every_query(board: Json) -> None:
    datasource = variables(board)["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    assert datasource["current"]["value"] == dashboards.DATASOURCE_UID
    selected = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels(board):
        assert panel["datasource"] == selected
        assert all(target["datasource"] == selected for target in panel["targets"])


def test_warroom_filters_by_store_and_channel() -> None:
    board = build_dashboards()[f"{WARROOM_DASHBOARD_UID}.json"]
    found = variables(board)
    for name in ("store", "channel"):
        assert found[name]["type"] == "query"
        assert re.fullmatch(rf"label_values\(.+, {name}\)", found[name]["query"])
        assert found[name]["includeAll"] and found[name]["allValue"] == ALL_VALUES


@pytest.mark.parametrize("board", boards(), ids=lambda board: board["uid"])
def test_queries_only_use_defined_variables(board: Json) -> None:
    defined = set(variables(board)) | set(GRAFANA_BUILTINS)
    for panel in panels(board):
        for target in panel["targets"]:
            used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
            assert used <= defined, f"{panel['title']}: undefined {sorted(used - defined)}"


@pytest.mark.parametrize(("title", "expr"), all_queries())
def test_recorded_series_are_selected_by_their_level_labels(title: str, expr: str) -> None:
    """`store_channel:x:rate1m{job="..."}` would match nothing: the rule drops `job`."""
    for name, matchers in re.findall(r"([a-z_]+:[a-z_]+:[a-z0-9_]+)\{([^}]*)\}", expr):
        labels = set(re.findall(r"(\w+)\s*=~?", matchers))
        level = set(name.split(":")[0].split("_"))
        assert labels <= level, f"{title}: {name} has no label {sorted(labels - level)}"


def test_warroom_reads_in_order_and_every_panel_says_what_to_do() -> None:
    board = build_dashboards()[f"{WARROOM_DASHBOARD_UID}.json"]
    titles = [panel["title"] for panel in board["panels"]]
    assert titles[:2] == ["The sale so far", "GMV of the sale so far"]
    funnel = next(p for p in board["panels"] if p["title"] == "Funnel of the sale so far")
    assert [t["legendFormat"] for t in funnel["targets"]] == list(STAGES)
    aov = next(p for p in board["panels"] if p["title"] == "Average order value per currency")
    assert "on (currency)" in aov["targets"][0]["expr"]
    for panel in panels(board):
        assert "$__range" not in json.dumps(panel["targets"]), panel["title"]
    for board in boards():
        for panel in panels(board):
            assert len(panel["description"]) > 40, panel["title"]


def test_panel_thresholds_are_the_alert_thresholds() -> None:
    assert f"> {dashboards.LAG_ALERT_MESSAGES}" in alert_expr("SalewatchConsumerLagHigh")
    assert f"> {dashboards.DEADLETTER_ALERT_RATIO}" in alert_expr("SalewatchDeadLetterRateHigh")


def test_provisioning_matches_the_dashboards() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (prometheus,) = datasources["datasources"]
    alertmanager = yaml.safe_load((PROVISIONING / "datasources" / "alertmanager.yml").read_text())
    (manager,) = alertmanager["datasources"]
    assert (manager["type"], manager["jsonData"]["implementation"]) == (
        "alertmanager",
        "prometheus",
    )
    assert manager["url"] == "http://alertmanager:9093"
    assert prometheus["type"] == "prometheus"
    assert prometheus["uid"] == dashboards.DATASOURCE_UID
    assert prometheus["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "salewatch.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


# -- against the dev stack's Prometheus -------------------------------------------------------


def prometheus_get(stack: Stack, path: str, params: list[tuple[str, str]]) -> Json:
    url = f"{stack.prometheus_url}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body: Json = json.loads(response.read())
    except urllib.error.HTTPError as error:  # 400/422: a bad query, with the reason
        body = json.loads(error.read())
    return body


@pytest.mark.integration
@pytest.mark.parametrize(("title", "expr"), all_queries())
def test_panel_query_runs_on_prometheus(stack: Stack, title: str, expr: str) -> None:
    body = prometheus_get(stack, "/api/v1/query", [("query", substitute(expr))])
    assert body["status"] == "success", f"{title}: {body.get('error')}"


@pytest.mark.integration
@pytest.mark.parametrize("board", boards(), ids=lambda board: board["uid"])
def test_variable_queries_run_on_prometheus(stack: Stack, board: Json) -> None:
    """label_values(selector, label) is Grafana's; Prometheus answers it as label values."""
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        result = re.fullmatch(r"query_result\((.+)\)", variable["query"])
        if result:
            body = prometheus_get(stack, "/api/v1/query", [("query", substitute(result.group(1)))])
            assert body["status"] == "success", f"{variable['name']}: {body.get('error')}"
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
        assert match, variable["query"]
        selector, label = substitute(match.group(1)), match.group(2)
        body = prometheus_get(stack, f"/api/v1/label/{label}/values", [("match[]", selector)])
        assert body["status"] == "success", f"{variable['name']}: {body.get('error')}"
