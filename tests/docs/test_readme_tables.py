"""The README's tables that restate code (settings, metrics, alerts) agree with the code.

A setting, metric or alert added without its row fails here, and so does a row left behind
after one is removed.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from streams.runtime.metrics import Metrics
from streams.runtime.settings import ENV_PREFIX, Settings

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
RULE_FILES = sorted((REPO / "alerts" / "rules").glob("*.yml"))
RUNBOOK = (REPO / "alerts" / "runbook.md").read_text()


def section(title: str) -> str:
    """The text of a `## title` section of the README, up to the next `## `."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def table_cells(text: str) -> str:
    """The first column of every table row (where names are listed)."""
    return "\n".join(line.split("|")[1] for line in text.splitlines() if line.startswith("|"))


def test_every_setting_has_a_row_and_every_row_a_setting() -> None:
    in_code = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    in_readme = set(re.findall(r"SALEWATCH_[A-Z0-9_]+", table_cells(section("Configuration"))))
    assert in_code - in_readme == set(), "settings missing from the README"
    assert in_readme - in_code == set(), "README rows of settings that do not exist"


def test_every_metric_has_a_row_and_every_row_a_metric() -> None:
    suffix = {"counter": "_total", "info": "_info"}  # what the exposition appends
    in_code = {
        family.name + suffix.get(family.type, "")
        for family in Metrics().registry.collect()
        if family.name.startswith("salewatch_")
    }
    in_readme = set(re.findall(r"salewatch_[a-z0-9_]+", table_cells(section("Metrics"))))
    assert in_code - in_readme == set(), "metrics missing from the README"
    assert in_readme - in_code == set(), "README rows of metrics that do not exist"


def rule_alerts() -> set[str]:
    names = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["alert"] for rule in group["rules"] if "alert" in rule}
    return names


def test_every_alert_has_a_row_and_a_runbook_section() -> None:
    in_readme = set(re.findall(r"`([A-Z][A-Za-z]+)`", table_cells(section("Alerts"))))
    in_runbook = set(re.findall(r"^## ([A-Z][A-Za-z]+)$", RUNBOOK, re.M))
    assert rule_alerts() - in_readme == set(), "Prometheus alerts missing from the README"
    # the README lists the stream's business alerts too: each has a runbook section
    assert in_readme - in_runbook == set(), "README alerts without a runbook section"
