"""`salewatch simulate`: options, incident specs, files and the summary."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from simulator import Incident, generate, read_jsonl, read_truth
from simulator.cli import add_arguments, build_config, main, parse_incident, run


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_incident_specs() -> None:
    assert parse_incident("sellout") == "sellout"
    assert parse_incident("payment_outage@300-480") == Incident("payment_outage", 300, 480)
    assert parse_incident("refund_wave@60") == Incident("refund_wave", 60, 240)
    assert parse_incident("sellout@300-600:store=1,factor=20,sku=sku-00007") == Incident(
        "sellout", 300, 600, store=1, factor=20.0, sku="sku-00007"
    )
    stop = parse_incident("traffic_stop@0-60:channel=web")
    assert isinstance(stop, Incident) and stop.channel == "web"


@pytest.mark.parametrize(
    "spec", ["meteor", "sellout:store=1", "sellout@abc", "sellout@10-20:colour=red"]
)
def test_bad_incident_specs(spec: str) -> None:
    assert main(["--no-kafka", "--quiet", "--incident", spec]) == 2


def test_config_from_options() -> None:
    args = parse("--seed", "4", "--duration", "1800", "--rate", "50", "--stores", "2",
                 "--key-mode", "user", "--incident", "sellout", "--incident", "refund_wave",
                 "--rush-minutes", "3")  # fmt: skip
    config = build_config(args)
    assert (config.seed, config.duration_s, config.base_rate, config.stores) == (4, 1800, 50, 2)
    assert config.key_mode == "user" and config.rush_minutes == 3
    assert [i.kind for i in config.incidents] == ["sellout", "refund_wave"]


def test_run_writes_files_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = ["--no-kafka", "--quiet", "--duration", "900", "--rate", "20", "--stores", "2"]
    options += ["--skus", "50", "--incident", "payment_outage", "--out", str(tmp_path)]
    args = parse(*options)
    assert run(args) == 0
    out = capsys.readouterr().out
    assert "deliveries by topic" in out and "PaymentFailureSpike" in out
    deliveries = read_jsonl(tmp_path / "events.jsonl")
    truth = read_truth(tmp_path / "truth.json")
    assert len(deliveries) == truth.deliveries
    assert all(key == b"store-000" or key == b"store-001" for _t, key, _e in deliveries)
    assert truth.expected_alerts[0].alertname == "PaymentFailureSpike"
    again = generate(build_config(args))  # the files hold exactly the generated scenario
    assert deliveries == again.deliveries
    assert truth == again.truth


def test_progress_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-kafka", "--duration", "60", "--rate", "10", "--skus", "20"]) == 0
    captured = capsys.readouterr()
    assert "generate" in captured.err and "100%" in captured.err
    assert "[" not in captured.out  # no bar in the summary


def test_run_produces_to_kafka(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import kafka  # type: ignore[import-untyped]

    from tests.simulator.test_producer import FakeProducer

    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    options = ["--duration", "120", "--rate", "20", "--skus", "30", "--bootstrap", "h:1"]
    assert main([*options, "--topic-prefix", "x.", "--key-mode", "none"]) == 0
    sent = FakeProducer.last.sent
    assert sent and all(topic.startswith("x.") and key is None for topic, key, _v in sent)
    captured = capsys.readouterr()
    assert "produce" in captured.err and "events/s" in captured.out
