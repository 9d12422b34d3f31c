"""`salewatch emit` without a broker: line handling, rejections, usage errors."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson
import pytest

from sdk import cli
from sdk.client import StoreClient
from tests.sdk.test_client import FakeProducer
from tests.support.events import make_event


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_lines_are_sent_or_rejected_with_line_numbers() -> None:
    producers: list[FakeProducer] = []

    def factory(**config: Any) -> FakeProducer:
        producers.append(FakeProducer(**config))
        return producers[0]

    lines = [
        orjson.dumps(make_event("click")) + b"\n",
        b"\n",
        b"{not json\n",
        orjson.dumps(make_event("click", channel="BAD")) + b"\n",
        orjson.dumps(make_event("order_paid")) + b"\n",
        b"[1, 2]\n",
    ]
    with StoreClient("kafka:9092", producer_factory=factory) as client:
        report = cli.emit_lines(client, lines, topic=None)
    assert report.read == 5
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "invalid_json"),
        (4, "invalid_field"),
        (6, "not_an_event"),
    ]
    assert "channel" in report.rejected[1].detail
    assert sorted(topic for topic, _, _ in producers[0].sent) == ["shop.clicks", "shop.orders"]


def test_forced_topic_refuses_types_of_other_topics() -> None:
    with StoreClient("kafka:9092", producer_factory=FakeProducer) as client:
        report = cli.emit_lines(client, [orjson.dumps(make_event("click"))], topic="orders")
    assert [(r.line, r.reason) for r in report.rejected] == [(1, "unknown_type")]


def test_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse(str(tmp_path / "nope.jsonl"))) == cli.EXIT_USAGE
    assert "nope.jsonl" in capsys.readouterr().err


def test_bad_bootstrap_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"")
    assert cli.run(parse(str(events), "--bootstrap", "no port")) == cli.EXIT_USAGE
    assert "SALEWATCH_KAFKA_BOOTSTRAP" in capsys.readouterr().err
