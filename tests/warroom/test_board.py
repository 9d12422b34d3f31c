"""The war room's figures from what a worker serves, and how they are drawn."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from warroom.board import build_board
from warroom.exposition import Exposition
from warroom.screen import plain_line, render, sparkline

NOW_MS = 1_794_326_500_000
METRICS = """\
# TYPE salewatch_gmv_total counter
salewatch_gmv_total{store="s1",channel="app",currency="CNY"} 300.5
salewatch_gmv_total{store="s2",channel="app",currency="CNY"} 100.0
salewatch_gmv_total{store="s2",channel="app",currency="USD"} 50.0
# TYPE salewatch_paid_orders_total counter
salewatch_paid_orders_total{store="s1",channel="app",currency="CNY"} 3.0
salewatch_paid_orders_total{store="s2",channel="app",currency="CNY"} 1.0
salewatch_paid_orders_total{store="s2",channel="app",currency="USD"} 2.0
# TYPE salewatch_funnel_events_total counter
salewatch_funnel_events_total{store="s1",channel="app",stage="impression"} 1000.0
salewatch_funnel_events_total{store="s1",channel="app",stage="click"} 100.0
salewatch_funnel_events_total{store="s1",channel="app",stage="cart"} 20.0
salewatch_funnel_events_total{store="s1",channel="app",stage="order"} 8.0
salewatch_funnel_events_total{store="s1",channel="app",stage="pay"} 4.0
salewatch_funnel_events_total{store="s1",channel="web",stage="impression"} 50.0
# TYPE salewatch_consumer_lag_messages gauge
salewatch_consumer_lag_messages{topic="shop.clicks"} 7.0
salewatch_consumer_lag_messages{topic="shop.orders"} 3.0
# TYPE salewatch_watermark_timestamp_seconds gauge
salewatch_watermark_timestamp_seconds 1794326490.0
"""


def window(start_ms: int, gmv: str, pay: int, failed: int, refunds: int) -> dict[str, Any]:
    return {
        "window_start": start_ms, "window_end": start_ms + 60_000, "channel": "app",
        "gmv": {"CNY": gmv}, "counts": {"pay": pay}, "payment_failed": failed,
        "refund_requested": refunds, "users": {"impression": 40},
        "complaints": 1, "new_buyers": pay - pay // 2, "returning_buyers": pay // 2,
        "page_views": 90, "visitors": 45, "spend": {"CNY": "2.50"},
    }  # fmt: skip


def firing(alertname: str, severity: str, starts_at: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": alertname, "severity": severity, **labels},
        "annotations": {"summary": f"{alertname} summary"},
        "startsAt": starts_at,
    }


def stock(sku: str, status: str, available: int, minutes: float | None) -> dict[str, Any]:
    return {"store_id": "s1", "sku": sku, "status": status, "available": available,
            "velocity_per_min": 2.0, "minutes_to_stockout": minutes, "ts": NOW_MS}  # fmt: skip


@pytest.fixture
def board() -> Any:
    t = NOW_MS - NOW_MS % 60_000
    windows = {
        ("s1", "app"): {
            "closed": [window(t - 120_000, "10.00", 9, 1, 0), window(t - 60_000, "30.50", 1, 3, 1)]
        },
        ("s2", "app"): {"closed": [window(t - 60_000, "5.00", 0, 0, 0)]},
    }
    stocks = [
        {"skus": [stock("a", "low", 5, 2.5), stock("b", "out", -1, 0.0)], "complete": True},
        {"skus": [stock("c", "out", -4, 0.0)], "complete": False},
    ]
    alerts = {"firing": [
        firing("LowStockSoon", "warning", "2026-11-10T16:00:00.000Z", store_id="s1", sku="a"),
        firing("StockOut", "critical", "2026-11-10T16:01:00.000Z", store_id="s1", sku="b"),
    ]}  # fmt: skip
    return build_board("http://w", NOW_MS, True, Exposition.parse(METRICS), windows, stocks, alerts)


def test_totals_come_from_the_live_counters(board: Any) -> None:
    assert board.gmv == {"CNY": 400.5, "USD": 50.0}
    assert board.paid_orders == 6
    assert board.aov == pytest.approx(100.125)  # CNY's GMV per order paid in CNY
    assert board.lag_messages == 10
    assert board.watermark_lag_s == pytest.approx(10.0)


def test_gmv_per_window_adds_up_stores_and_channels(board: Any) -> None:
    t = NOW_MS - NOW_MS % 60_000
    assert board.gmv_per_window == [(t - 120_000, 10.0), (t - 60_000, 35.5)]


def test_funnel_rows_per_channel_with_step_conversion_and_pooled_rates(board: Any) -> None:
    app, web = board.channels
    assert (app.channel, web.channel) == ("app", "web")
    assert app.conversion("impression") is None
    assert app.conversion("click") == pytest.approx(0.1)
    assert app.conversion("pay") == pytest.approx(0.5)
    assert web.conversion("click") == 0.0  # 50 impressions, no click
    assert web.conversion("cart") is None  # no click to convert from
    assert app.uv == 80  # latest closed window of both stores
    assert app.payment_failure_rate == pytest.approx(4 / 14)  # 10 paid, 4 failed
    assert app.refund_rate == pytest.approx(0.1)
    assert app.complaint_rate == pytest.approx(3 / 10)  # 3 windows with one complaint each
    assert app.repurchase_rate == pytest.approx(4 / 10)  # 9 paid: 4 returning, 1 paid: 0
    assert app.visit_depth == pytest.approx(2.0)
    assert app.roi == pytest.approx(45.5 / 7.5)
    assert (web.roi, web.visit_depth) == (None, None)  # no window of its own


def test_stock_most_urgent_first_across_stores(board: Any) -> None:
    assert [s.sku for s in board.stock] == ["c", "b", "a"]
    assert not board.stock_complete


def test_alerts_critical_first_with_their_age(board: Any) -> None:
    critical, warning = board.alerts
    assert (critical.alertname, critical.target) == ("StockOut", "s1 b")
    assert warning.age_s == pytest.approx(NOW_MS / 1000 - 1_794_326_400)


def test_the_screen_and_the_plain_line_show_the_figures(board: Any) -> None:
    console = Console(width=160, height=40, record=True)
    console.print(render(board))
    screen = console.export_text()
    for shown in ("CNY 400.50", "StockOut", "impression", "1,000", "10.0%", "OUT"):
        assert shown in screen
    line = plain_line(board)
    assert "GMV CNY 400.50" in line and "alerts firing 2" in line and "out of stock 2" in line


def test_sparkline_scales_to_the_largest_value() -> None:
    assert sparkline([0.0, 5.0, 10.0]) == "▁▅█"
    assert sparkline([0.0, 0.0]) == "▁▁"
