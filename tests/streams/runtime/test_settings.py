from __future__ import annotations

import subprocess
import sys

import pytest

from streams.contract.errors import ConfigError
from streams.contract.events import TopicKind
from streams.runtime.settings import load_settings
from tests.support.stack import REPO


def test_defaults_follow_the_contract() -> None:
    settings = load_settings()
    assert settings.input_topic(TopicKind.CLICKS) == "shop.clicks"
    assert settings.output_topic("deadletter") == "salewatch.deadletter"
    assert (settings.window_ms, settings.grace_ms) == (60_000, 30_000)
    assert settings.dedup_horizon_ms == 15 * 60_000


def test_one_prefix_renames_every_input_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALEWATCH_TOPIC_PREFIX", "d11.")
    settings = load_settings()
    assert [settings.input_topic(k) for k in TopicKind] == [
        "d11.clicks", "d11.carts", "d11.orders", "d11.aftersales", "d11.inventory",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SALEWATCH_WINDOW_MS", "sixty"),
        ("SALEWATCH_WINDOW_MS", "0"),
        ("SALEWATCH_WEB_PORT", "70000"),
        ("SALEWATCH_KAFKA_BOOTSTRAP", "no port"),
        ("SALEWATCH_STORE", "redis://x"),
        ("SALEWATCH_GROUP_INSTANCE_ID", "worker 1"),
    ],
)
def test_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_grace_beyond_dedup_horizon_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALEWATCH_GRACE_MS", str(20 * 60_000))
    with pytest.raises(ConfigError, match="SALEWATCH_GRACE_MS"):
        load_settings()


def test_worker_refuses_to_start_with_bad_config() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streams", "worker"],
        cwd=REPO,
        env={"SALEWATCH_GRACE_MS": "-1", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SALEWATCH_GRACE_MS" in result.stderr
    assert "Traceback" not in result.stderr


def test_stage_1_is_a_static_member_of_its_group_when_the_worker_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().ingest_group_instance_id is None
    monkeypatch.setenv("SALEWATCH_GROUP_INSTANCE_ID", "worker-1")
    assert load_settings().ingest_group_instance_id == "worker-1-ingest"
