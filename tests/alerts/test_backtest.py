"""`salewatch backtest`: simulated windows replayed through the detectors, incidents scored,
floors turned into the exit code; from a scenario, a JSONL file and labelled incidents."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import pytest
import yaml  # type: ignore[import-untyped]

from alerts.backtest import delay, replay, scenario_windows, score, truth_incidents
from alerts.campaign import Calendar, CampaignFile
from simulator import Incident, Scenario, ScenarioConfig, generate
from streams.runtime.cli import main

START_S = 725.0  # 5 s into a window, after 12 windows of normal traffic
MINIAPP = {"store_id": "store-001", "channel": "miniapp", "stage": "order"}


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    # store 1's miniapp: ~300 clicks, ~60 carts a minute; its checkout breaks for 6 minutes
    config = ScenarioConfig(
        seed=11, duration_s=START_S + 420, base_rate=400, stores=2, store_weights=(1, 3),
        skus_per_store=300, flash_sales=(), rush_multiplier=1.0,
        incidents=(Incident("broken_checkout", START_S, START_S + 360, store=1,
                            channel="miniapp"),),
    )  # fmt: skip
    return generate(config)


def test_a_broken_checkout_of_60_carts_a_minute_is_caught_within_3_windows(
    scenario: Scenario,
) -> None:
    truth = scenario.truth
    (alert,) = truth.expected_alerts
    assert 45 <= alert.evidence["baseline_volume_per_window"] <= 80  # type: ignore[operator]
    result = replay(scenario_windows(truth), Calendar.build(CampaignFile()))
    expected, allowed = truth_incidents(truth)
    (incident,) = expected
    assert incident.labels == MINIAPP
    found = delay(result, incident)
    assert found is not None and 1 <= found <= 3
    scores = score(result, expected, allowed)
    assert scores["ConversionDrop"].recall == 1.0
    assert sum(s.false for s in scores.values()) == 0


def test_the_command_scores_a_windows_file_against_labelled_incidents(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    windows = tmp_path / "windows.jsonl"
    windows.write_bytes(b"".join(orjson.dumps(w) + b"\n" for w in scenario_windows(scenario.truth)))
    start = scenario.config.start + timedelta(seconds=START_S)
    labelled = [{"alertname": "ConversionDrop", "labels": MINIAPP, "start": start.isoformat(),
                 "end": (start + timedelta(minutes=6)).isoformat()}]  # fmt: skip
    incidents = tmp_path / "incidents.yml"
    incidents.write_text(yaml.safe_dump({"incidents": labelled}))
    args = ["backtest", "--windows", str(windows), "--incidents", str(incidents)]
    assert run_cli([*args, "--min-recall", "1", "--max-false-per-hour", "0"]) == 0
    out = capsys.readouterr().out
    assert "ConversionDrop{channel=miniapp,stage=order,store_id=store-001}" in out
    assert "| ConversionDrop | 1 | 1 | 100% |" in out
    # an incident on a channel where nothing happened: missed, and the floor fails
    labelled.append({**labelled[0], "labels": {**MINIAPP, "channel": "web"}})
    incidents.write_text(yaml.safe_dump(labelled))
    assert run_cli([*args, "--min-recall", "1", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "alert timeline" not in out
    assert "FAILED: ConversionDrop recall 50% < 100%" in out


@pytest.mark.parametrize(
    ("incident", "alert"),
    [("payment_outage", "PaymentFailureSpike"), ("broken_pay", "ConversionDrop")],
)
def test_the_command_generates_a_scenario_and_checks_its_expected_alerts(
    incident: str, alert: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = ("--duration 1080 --rate 150 --stores 2 --skus 300 --rush-minutes 0"
                f" --incident {incident}@720-1020:store=0,channel=app")  # fmt: skip
    code = run_cli(["backtest", "--scenario", scenario, "--min-recall", "1",
                    "--max-false-per-hour", "0", "--max-delay-windows", "3"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"| {alert} | 1 | 1 | 100% |" in out
    if incident == "broken_pay":  # the checkout broke at the pay step, not before
        assert "ConversionDrop{channel=app,stage=pay,store_id=store-000}" in out


def run_cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    return int(exited.value.code or 0)
