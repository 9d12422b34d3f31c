"""Injected incidents show up in the data and in the truth's expected alerts; nothing else
looks like an incident."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import pytest

from simulator import Incident, Scenario, ScenarioConfig, SimulatorError, generate
from simulator.clock import window_start_ms
from simulator.placement import place_incidents
from streams.runtime.settings import Settings
from tests.simulator.reference import incident_scenario, stock_changes, ts_ms


def incident(scenario: Scenario, kind: str) -> dict[str, Any]:
    return next(i for i in scenario.truth.incidents if i["kind"] == kind)


def windows_of(scenario: Scenario, store_id: str, channel: str | None, low: int, high: int):
    """The truth's windows of a store (and channel) that lie wholly in [low, high)."""
    window_ms = scenario.truth.window_ms
    return [
        window
        for (store, chan, start), window in scenario.truth.windows.items()
        if store == store_id
        and (channel is None or chan == channel)
        and low <= start
        and start + window_ms <= high
    ]


def rate(windows: list[Any], numerator: str, denominator: str) -> float:
    def value(window: Any, name: str) -> int:
        return window.counts[name] if name in window.counts else getattr(window, name)

    top = sum(value(w, numerator) for w in windows)
    bottom = sum(value(w, denominator) for w in windows)
    return top / bottom


def stock_timelines(scenario: Scenario) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """(ts, available after every change at ts) per store x sku, in event time."""
    unique = list({e["event_id"]: e for e in scenario.events()}.values())
    opening = {
        (e["store_id"], e["sku"]): e["available"]
        for e in unique
        if e["type"] == "stock_snapshot" and ts_ms(e["ts"]) == scenario.config.start_ms
    }
    timelines = {}
    changes = stock_changes(unique)
    for key, base in opening.items():
        by_ts: dict[int, int] = defaultdict(int)
        for ts, delta in changes.get(key, []):
            by_ts[ts] += delta
        points = [(scenario.config.start_ms, base)]
        for ts in sorted(by_ts):
            points.append((ts, points[-1][1] + by_ts[ts]))
        timelines[key] = points
    return timelines


def test_expected_alerts_name_every_incident() -> None:
    truth = incident_scenario().truth
    found = {
        (a.alertname, tuple(sorted(a.labels.items())), a.incident) for a in truth.expected_alerts
    }
    sellout = incident(incident_scenario(), "sellout")
    assert found == {
        ("StockOut", (("sku", sellout["sku"]), ("store_id", "store-000")), "sellout"),
        ("PaymentFailureSpike", (("channel", "app"), ("store_id", "store-000")), "payment_outage"),
        *(
            (
                "ConversionDrop",
                (("channel", channel), ("stage", "order"), ("store_id", "store-000")),
                "broken_checkout",
            )
            for channel in ("app", "web", "miniapp", "live")
        ),
        ("RefundSurge", (("store_id", "store-000"),), "refund_wave"),
        ("TrafficDrop", (("channel", "web"), ("store_id", "store-000")), "traffic_stop"),
    }
    for alert in truth.expected_alerts:
        if alert.incident != "sellout":
            source = incident(incident_scenario(), alert.incident)
            assert (alert.starts_at_ms, alert.ends_at_ms) == (source["start_ms"], source["end_ms"])
    allowed = {(a.alertname, a.labels.get("stage")) for a in truth.allowed_alerts}
    assert allowed == {("LowStockSoon", None), ("ConversionDrop", "pay")}


def test_sellout_hits_zero_while_orders_keep_coming() -> None:
    scenario = incident_scenario()
    alert = next(a for a in scenario.truth.expected_alerts if a.alertname == "StockOut")
    source = incident(scenario, "sellout")
    key = (alert.labels["store_id"], alert.labels["sku"])
    assert source["start_ms"] <= alert.starts_at_ms < source["end_ms"]
    assert alert.ends_at_ms is not None and alert.ends_at_ms >= source["end_ms"]
    points = stock_timelines(scenario)[key]
    before = [available for ts, available in points if ts < alert.starts_at_ms]
    assert min(before) > 0
    out = [available for ts, available in points if alert.starts_at_ms <= ts < alert.ends_at_ms]
    assert out[0] == 0 and max(out) <= 0 and min(out) < 0  # oversold: orders kept coming
    after = [available for ts, available in points if ts >= alert.ends_at_ms]
    assert min(after) > 0
    assert scenario.truth.inventory[key] == points[-1][1] > 0
    orders_while_out = sum(
        1
        for e in scenario.events("orders")
        if e["type"] == "order_created"
        and e["store_id"] == key[0]
        and alert.starts_at_ms < ts_ms(e["ts"]) < alert.ends_at_ms
        and any(line["sku"] == key[1] for line in e["lines"])
    )
    assert orders_while_out >= 5


def test_no_other_sku_runs_out_or_low() -> None:
    scenario = incident_scenario()
    alert = next(a for a in scenario.truth.expected_alerts if a.alertname == "StockOut")
    sellout = (alert.labels["store_id"], alert.labels["sku"])
    for key, points in stock_timelines(scenario).items():
        if key != sellout:
            assert min(available for _ts, available in points) >= 50, key


def test_selldown_runs_low_without_running_out_until_its_restock() -> None:
    config = ScenarioConfig(
        seed=3, duration_s=300, base_rate=60, stores=1, skus_per_store=50, flash_sales=(),
        incidents=(Incident("selldown", 60, 240, factor=5),),
    )  # fmt: skip
    scenario = generate(config)
    (alert,) = scenario.truth.expected_alerts
    source = incident(scenario, "selldown")
    key = (alert.labels["store_id"], alert.labels["sku"])
    assert (alert.alertname, key[1], alert.incident) == ("LowStockSoon", source["sku"], "selldown")
    # the worker's rule, from the events: stock at most low_stock_minutes of sales, where
    # sales per minute decay exponentially with the velocity half-life
    settings = Settings.model_fields
    tau_ms = settings["velocity_half_life_ms"].default / math.log(2)
    low_minutes = settings["low_stock_minutes"].default
    holds = [(ts, -delta) for ts, delta in stock_changes(list(scenario.events()))[key] if delta < 0]

    def per_minute(now: int) -> float:
        units = sum(qty * math.exp(-(now - ts) / tau_ms) for ts, qty in holds if ts <= now)
        return units * 60_000 / tau_ms

    points = stock_timelines(scenario)[key]
    assert alert.ends_at_ms is not None and alert.ends_at_ms >= source["end_ms"]
    spell = [(ts, n) for ts, n in points if source["start_ms"] <= ts < alert.ends_at_ms]
    assert min(n for ts, n in points if ts < alert.ends_at_ms) > 0  # never out
    low = [ts for ts, n in spell if n <= low_minutes * per_minute(ts)]
    assert low[0] == alert.starts_at_ms
    assert spell[-1][1] <= 5 * per_minute(source["end_ms"]) + 1  # factor: minutes left
    assert min(n for ts, n in points if ts >= alert.ends_at_ms) > 0  # restocked


def test_payment_outage_fails_most_payments_of_its_store_and_channel() -> None:
    scenario = incident_scenario()
    source = incident(scenario, "payment_outage")
    during = windows_of(scenario, "store-000", "app", source["start_ms"], source["end_ms"])
    before = windows_of(scenario, "store-000", "app", 0, source["start_ms"])
    attempts = sum(w.payment_attempts for w in during)
    assert attempts >= 50
    assert sum(w.payment_failed for w in during) / attempts > 0.6
    assert sum(w.payment_failed for w in before) / sum(w.payment_attempts for w in before) < 0.1
    web = windows_of(scenario, "store-000", "web", source["start_ms"], source["end_ms"])
    assert sum(w.payment_failed for w in web) / sum(w.payment_attempts for w in web) < 0.2


def test_broken_checkout_collapses_cart_to_order() -> None:
    scenario = incident_scenario()
    source = incident(scenario, "broken_checkout")
    during = windows_of(scenario, "store-000", None, source["start_ms"], source["end_ms"])
    before = windows_of(scenario, "store-000", None, 0, source["start_ms"] - 120_000)
    assert rate(during, "order", "cart") < 0.1
    assert rate(before, "order", "cart") > 0.3
    other = windows_of(scenario, "store-001", None, source["start_ms"], source["end_ms"])
    assert rate(other, "order", "cart") > 0.25


def test_refund_wave_multiplies_refund_requests() -> None:
    scenario = incident_scenario()
    source = incident(scenario, "refund_wave")
    during = windows_of(scenario, "store-000", None, source["start_ms"], source["end_ms"])
    before = windows_of(scenario, "store-000", None, 0, source["start_ms"] - 60_000)
    assert rate(during, "refund_requested", "pay") > 4 * rate(before, "refund_requested", "pay")


def test_traffic_stop_silences_its_store_and_channel() -> None:
    scenario = incident_scenario()
    source = incident(scenario, "traffic_stop")
    low, high = source["start_ms"], source["end_ms"]
    counts: dict[str, int] = defaultdict(int)
    for event in {e["event_id"]: e for e in scenario.events()}.values():
        if event["store_id"] == "store-000" and event["channel"] == "web":
            ts = ts_ms(event["ts"])
            counts["before" if ts < low else "during" if ts < high else "after"] += 1
    assert counts["during"] == 0
    assert counts["before"] > 1000 and counts["after"] > 300
    evidence = next(a for a in scenario.truth.expected_alerts if a.alertname == "TrafficDrop")
    assert evidence.evidence["incident_per_window"] == 0
    assert (evidence.evidence["baseline_per_window"] or 0) > 20


def test_flash_sale_surges_its_skus_at_a_lower_price() -> None:
    scenario = incident_scenario()
    sale = scenario.config.flash_sales[0]
    low, high = scenario.config.at_ms(sale.start_s), scenario.config.at_ms(sale.end_s)
    views: dict[str, int] = defaultdict(int)
    prices: dict[tuple[str, bool], set[str]] = defaultdict(set)
    for event in scenario.events("clicks"):
        if event["store_id"] == "store-001" and event["type"] == "impression":
            ts = ts_ms(event["ts"])
            if low <= ts < high:
                views[event["sku"]] += 1
    hottest = sorted(views, key=views.get, reverse=True)[: sale.skus]  # type: ignore[arg-type]
    for event in scenario.events("orders"):
        if event["store_id"] == "store-001" and event["type"] == "order_created":
            during = low <= ts_ms(event["ts"]) < high
            for line in event["lines"]:
                if line["sku"] in hottest:
                    prices[(line["sku"], during)].add(str(line["unit_price"]))
    on_sale = [sku for sku in hottest if prices[(sku, True)] and prices[(sku, False)]]
    assert on_sale
    for sku in on_sale:
        assert float(min(prices[(sku, True)])) < float(min(prices[(sku, False)]))


def test_incident_windows_line_up_with_the_truth() -> None:
    scenario = incident_scenario()
    for source in scenario.truth.incidents:
        assert window_start_ms(source["start_ms"], 60_000) == source["start_ms"]


def test_default_placement_keeps_clear_of_the_rush() -> None:
    config = place_incidents(
        ScenarioConfig(duration_s=1800, flash_sales=()),
        ["sellout", "payment_outage", "refund_wave"],
    )
    rush = (
        (config.rush_start_ms - config.start_ms) / 1000,
        (config.rush_end_ms - config.start_ms) / 1000,
    )
    starts = [i.start_s for i in config.incidents]
    assert starts == sorted(starts) and starts[0] == 300
    for placed in config.incidents:
        assert placed.end_s is not None
        assert placed.end_s <= rush[0] or placed.start_s >= rush[1]


def test_default_placement_needs_room() -> None:
    with pytest.raises(SimulatorError, match="no room"):
        place_incidents(ScenarioConfig(duration_s=400), ["sellout", "refund_wave"])


def test_open_ended_incident_has_no_end() -> None:
    config = ScenarioConfig(
        seed=2,
        duration_s=300,
        base_rate=60,
        stores=1,
        skus_per_store=100,
        incidents=(Incident("payment_outage", 120), Incident("sellout", 60)),
    )
    truth = generate(config).truth
    assert {a.alertname: a.ends_at_ms for a in truth.expected_alerts} == {
        "PaymentFailureSpike": None,
        "StockOut": None,
    }
