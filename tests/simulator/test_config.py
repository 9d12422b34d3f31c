"""Invalid configurations fail early with SimulatorError (a SalewatchError)."""

from __future__ import annotations

from typing import Any

import pytest

from simulator import FlashSale, FunnelRates, Incident, KeyMode, ScenarioConfig, SimulatorError
from streams.contract.errors import SalewatchError


@pytest.mark.parametrize(
    "options",
    [
        {"duration_s": 0},
        {"base_rate": -1},
        {"stores": 0},
        {"skus_per_store": 5},
        {"channels": ("app", "app"), "channel_weights": (1, 1)},
        {"channel_weights": (1.0,)},
        {"duplicate_rate": 1.5},
        {"late_rate": 0.6, "out_of_order_rate": 0.6},
        {"grace_ms": 0},
        {"dedup_horizon_ms": 10_000},
        {"key_mode": "partition"},
        {"incidents": (Incident("traffic_stop", 10, 20, store=9),)},
        {"incidents": (Incident("payment_outage", 10, 20, channel="tv"),)},
        {"flash_sales": (FlashSale(10, 20, store=4),)},
        {"run_id": "has space"},
    ],
)
def test_bad_config(options: dict[str, Any]) -> None:
    with pytest.raises(SimulatorError):
        ScenarioConfig(**options)


def test_bad_parts() -> None:
    with pytest.raises(SimulatorError, match="unknown incident"):
        Incident("meteor", 0, 10)  # type: ignore[arg-type]
    with pytest.raises(SimulatorError):
        Incident("sellout", 100, 50)
    with pytest.raises(SimulatorError):
        FlashSale(10, 5)
    with pytest.raises(SimulatorError):
        FunnelRates(click=1.5)
    assert issubclass(SimulatorError, SalewatchError)


def test_defaults() -> None:
    config = ScenarioConfig()
    assert config.start.isoformat() == "2026-11-10T23:50:00+08:00"
    assert config.rush_start_ms - config.start_ms == 600_000
    assert config.key_mode is KeyMode.STORE
    assert (config.window_ms, config.grace_ms) == (60_000, 30_000)
    assert Incident("sellout", 0).strength == Incident.default_factor("sellout")
    assert ScenarioConfig(key_mode="none").key_mode is KeyMode.NONE  # type: ignore[arg-type]
    assert Incident("refund_wave", 0).kind == "refund_wave"
