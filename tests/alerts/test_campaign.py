"""The campaign calendar: phases, multipliers, boundaries, overrides, and bad files."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from alerts.campaign import Calendar, CampaignError, calendar_of, load_calendar
from streams.contract.errors import ConfigError
from streams.runtime.settings import load_settings
from tests.support.stack import REPO

CST = timezone(timedelta(hours=8))
MIDNIGHT = datetime(2026, 11, 11, tzinfo=CST)
T0 = int(MIDNIGHT.timestamp() * 1000)
MIN = 60_000


def calendar(tmp_path: Path, spec: object) -> Calendar:
    path = tmp_path / "campaign.yml"
    path.write_text(yaml.safe_dump(spec))
    return load_calendar(path)


def phase(name: str, start_min: int, end_min: int, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "start": (MIDNIGHT + timedelta(minutes=start_min)).isoformat(),
        "end": (MIDNIGHT + timedelta(minutes=end_min)).isoformat(),
        **extra,
    }


def test_the_example_calendar_loads() -> None:
    example = load_calendar(REPO / "alerts" / "campaign.example.yml")
    names = [p.name for p in example.phases]
    assert names[:2] == ["warm-up", "midnight-peak"]
    assert example.multiplier("store-000", "app", T0, T0 + MIN) == 20
    assert example.multiplier("store-000", "app", T0 - MIN, T0) == 2
    peak = example.thresholds("store-000", "app", T0, T0 + MIN)
    assert peak.conversion.min_relative_drop == 0.4
    assert example.holds_baseline("store-000", "app", T0, T0 + MIN)
    reference = example.reference("any", "web")
    assert reference is not None and reference.conversion["order"] == 0.45


def test_multiplier_is_averaged_over_the_window_and_overlaps_multiply(tmp_path: Path) -> None:
    c = calendar(tmp_path, {"phases": [
        phase("peak", 0, 10, traffic_multiplier=20),
        phase("flash", 5, 8, traffic_multiplier=3, stores=["flag*"], channels=["app"]),
    ]})  # fmt: skip
    assert c.multiplier("s1", "app", T0 - MIN // 2, T0 + MIN // 2) == pytest.approx(10.5)
    assert c.multiplier("flagship", "app", T0 + 5 * MIN, T0 + 6 * MIN) == 60
    assert c.multiplier("flagship", "web", T0 + 5 * MIN, T0 + 6 * MIN) == 20
    assert c.multiplier("s1", "app", T0 + 10 * MIN, T0 + 11 * MIN) == 1


def test_windows_near_a_boundary_are_flagged_with_the_settle_time(tmp_path: Path) -> None:
    c = calendar(tmp_path, {"phases": [phase("peak", 0, 10, traffic_multiplier=20)]})
    near = [c.near_boundary("s", "app", T0 + i * MIN, T0 + (i + 1) * MIN, MIN)
            for i in range(-2, 4)]  # fmt: skip
    assert near == [False, False, True, True, False, False]
    assert c.near_boundary("s", "app", T0 + 10 * MIN, T0 + 11 * MIN, 0)


def test_the_sale_starts_with_the_first_phase_or_today(tmp_path: Path) -> None:
    c = calendar(tmp_path, {"phases": [phase("peak", 0, 10), phase("warm-up", -60, 0)]})
    assert c.sale_start_ms(T0 + 5 * MIN) == T0 - 60 * MIN
    assert c.sale_start_ms(T0 + 5 * 24 * 60 * MIN) == T0 - 60 * MIN  # a sale has one start
    before = T0 - 3 * 60 * MIN  # before the calendar's first phase: today, local midnight
    local = datetime.fromtimestamp(before / 1000).astimezone()
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    assert Calendar().sale_start_ms(before) == c.sale_start_ms(before)
    assert c.sale_start_ms(before) == int(midnight.timestamp() * 1000)


def test_phases_running_by_name(tmp_path: Path) -> None:
    c = calendar(tmp_path, {"phases": [
        phase("flash", 0, 5, stores=["s1"]), phase("flash", 20, 25), phase("night", 0, 60),
    ]})  # fmt: skip
    assert c.phases_running(T0 + 2 * MIN) == {"flash": True, "night": True}
    assert c.phases_running(T0 + 10 * MIN) == {"flash": False, "night": True}
    assert c.phases_running(T0 + 22 * MIN) == {"flash": True, "night": True}
    assert c.phases_running(T0 + 60 * MIN) == {"flash": False, "night": False}


def test_phase_thresholds_override_file_defaults_later_phases_win(tmp_path: Path) -> None:
    c = calendar(tmp_path, {
        "thresholds": {"payment_failure": {"pool_volume": 20}},
        "phases": [
            phase("a", 0, 10, thresholds={"conversion": {"min_relative_drop": 0.4}}),
            phase("b", 5, 10, thresholds={"conversion": {"min_relative_drop": 0.5}}),
        ],
    })  # fmt: skip
    assert c.defaults.payment_failure.pool_volume == 20
    assert c.thresholds("s", "app", T0, T0 + MIN).conversion.min_relative_drop == 0.4
    late = c.thresholds("s", "app", T0 + 6 * MIN, T0 + 7 * MIN)
    assert late.conversion.min_relative_drop == 0.5
    assert late.payment_failure.pool_volume == 20
    assert c.thresholds("s", "app", T0 - MIN, T0).conversion.min_relative_drop == 0.3


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"phases": [phase("p", 5, 1)]}, r"phases\.0: .*end must be after start"),
        ({"phases": [{"name": "p", "start": "2026-11-11T00:00:00", "end": "2026-11-11T01:00"}]},
         "needs a UTC offset"),
        ({"phases": [phase("p", 0, 1, traffic_multiplier=0)]}, "traffic_multiplier"),
        ({"phases": [phase("p", 0, 1, multiplier=2)]}, "multiplier: Extra inputs"),
        ({"thresholds": {"conversion": {"min_relative_drop": 2}}}, "thresholds: conversion"),
        ({"thresholds": {"significance": {"warning_alpha": 0}}},
         r"thresholds: significance\.warning_alpha"),
        ({"phases": [phase("peak", 0, 1, thresholds={"traffic": {"hysteresis": {
            "fire_k": 3, "fire_n": 2}}})]}, r"phases\[0\] \(peak\): thresholds"),
        ({"reference": [{"conversion": {"basket": 0.2}}]}, "reference"),
        (["not", "a", "mapping"], "expected a mapping"),
    ],
)  # fmt: skip
def test_bad_calendar_is_refused_saying_where(tmp_path: Path, spec: object, message: str) -> None:
    with pytest.raises(CampaignError, match=message):
        calendar(tmp_path, spec)


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(CampaignError, match="cannot read"):
        load_calendar(tmp_path / "nope.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("phases: [\n")
    with pytest.raises(CampaignError, match="not valid YAML"):
        load_calendar(broken)


def test_settings_name_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"phases": [phase("p", 5, 1)]}))
    monkeypatch.setenv("SALEWATCH_CAMPAIGN_FILE", str(bad))
    with pytest.raises(ConfigError, match=r"SALEWATCH_CAMPAIGN_FILE: .*end must be after start"):
        calendar_of(load_settings())
    monkeypatch.setenv("SALEWATCH_CAMPAIGN_FILE", "")
    assert load_settings().campaign_file is None


def test_worker_refuses_to_start_with_a_bad_calendar(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("phases: [{name: p}]\n")
    result = subprocess.run(
        [sys.executable, "-m", "streams", "worker"],
        cwd=REPO,
        env={"SALEWATCH_CAMPAIGN_FILE": str(bad), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SALEWATCH_CAMPAIGN_FILE" in result.stderr and "start" in result.stderr
    assert "Traceback" not in result.stderr


def test_spend_is_spread_over_its_phase_per_channel_and_overlaps_add(tmp_path: Path) -> None:
    c = calendar(tmp_path, {"spend_currency": "CNY", "phases": [
        phase("campaign", 0, 100, spend={"app": 10_000, "live": 5_000}),
        phase("flash", 10, 20, stores=["flag*"], spend={"app": 600}),
    ]})  # fmt: skip
    one = c.spend("s1", "app", T0, T0 + MIN)
    assert one is not None and (one.amount, one.currency) == (100, "CNY")
    flash = c.spend("flagship", "app", T0 + 10 * MIN, T0 + 11 * MIN)
    assert flash is not None and flash.amount == 160
    half = c.spend("s1", "live", T0 + 99 * MIN + MIN // 2, T0 + 100 * MIN + MIN // 2)
    assert half is not None and half.amount == 25
    assert c.spend("s1", "web", T0, T0 + MIN) is None  # no spend on the channel
    assert c.spend("s1", "app", T0 + 100 * MIN, T0 + 101 * MIN) is None  # after the campaign
