"""The post-sale review's figures from window and alert records."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from alerts.clock import iso_ms
from warroom.review.errors import ReviewError
from warroom.review.sale import PhaseSpan, build_review

T0 = 1_794_326_400_000  # 2026-11-11 00:00 CST
MIN = 60_000


def window(start: int, store: str = "s1", channel: str = "app", **extra: Any) -> dict[str, Any]:
    record = {
        "store_id": store, "channel": channel, "window_start": start, "window_end": start + MIN,
        "counts": {"impression": 100, "click": 10, "cart": 4, "order": 2, "pay": 2},
        "users": {"impression": 50}, "gmv": {"CNY": "20.50"}, "paid_orders": 2,
        "payment_failed": 1, "refund_requested": 0,
    }  # fmt: skip
    return record | extra


def alert(status: str, alertname: str, start: int, end: int | None, **labels: str) -> dict:
    return {
        "status": status, "fingerprint": alertname + str(sorted(labels.items())),
        "labels": {"alertname": alertname, "severity": "critical", "source": "salewatch",
                   **labels},
        "annotations": {"summary": f"{alertname} fired", "velocity_per_min": "3.000",
                        "runbook_url": "https://example.org/runbook.md#stockout"},
        "startsAt": iso_ms(start + 5_000), "endsAt": None if end is None else iso_ms(end + 5_000),
        "eventStartsAt": iso_ms(start), "eventEndsAt": None if end is None else iso_ms(end),
    }  # fmt: skip


def test_totals_add_up_every_window_in_the_range() -> None:
    windows = [window(T0 + i * MIN, store) for i in range(3) for store in ("s1", "s2")]
    windows.append(window(T0 + 3 * MIN))  # after the range
    review = build_review(windows, [], since_ms=T0, until_ms=T0 + 3 * MIN)
    total = review.total
    assert total.counts["impression"] == 600 and total.paid_orders == 12
    assert total.gmv == {"CNY": Decimal("123.00")}
    assert total.aov("CNY") == Decimal("10.25")

    assert total.payment_failure_rate == pytest.approx(6 / 18)
    assert total.conversion("click") == pytest.approx(0.1)
    assert list(review.per_window) == [T0, T0 + MIN, T0 + 2 * MIN]
    assert review.per_window[T0].users == 100  # both stores' UV of the minute
    assert [name for name, _ in review.top_stores(1)] == ["s1"]


def test_aov_divides_each_currency_by_its_own_paid_orders() -> None:
    usd = {"gmv": {"CNY": "20.00", "USD": "9.00"}, "paid_orders": 5,
           "paid_orders_by_currency": {"CNY": 2, "USD": 3}}  # fmt: skip
    review = build_review([window(T0, **usd), window(T0 + MIN)], [], since_ms=T0)
    assert review.total.aov("CNY") == Decimal("10.12")  # 40.50 / 4, rounded half even
    assert review.total.aov("USD") == Decimal("3.00")


def test_operations_kpis_add_up_over_the_windows() -> None:
    kpis = {"refund_amount": "5.25", "returns": 1, "complaints": 1, "new_buyers": 2,
            "returning_buyers": 1, "spend": {"CNY": "10.25"}}  # fmt: skip
    windows = [window(T0 + i * MIN, **kpis) for i in range(2)] + [window(T0 + 2 * MIN)]
    total = build_review(windows, []).total
    assert (total.refund_amount, total.returns, total.complaints) == (Decimal("10.50"), 2, 2)
    assert total.aftersales_rate == pytest.approx(2 / 6)  # no refund requests, 2 returns
    assert total.complaint_rate == pytest.approx(2 / 6)
    assert total.repurchase_rate == pytest.approx(2 / 6)
    assert total.roi("CNY") == pytest.approx(41 / 20.5)  # the windows with spend
    assert total.roi("USD") is None


def test_a_stock_out_lasts_from_firing_to_resolved_and_estimates_lost_units() -> None:
    windows = [window(T0 + i * MIN) for i in range(10)]
    records = [
        alert("firing", "StockOut", T0 + 2 * MIN, None, store_id="s1", sku="a"),
        alert("firing", "StockOut", T0 + 3 * MIN, None, store_id="s1", sku="b"),
        alert("resolved", "StockOut", T0 + 2 * MIN, T0 + 6 * MIN, store_id="s1", sku="a"),
    ]
    review = build_review(windows, records)
    a, b = review.stockouts
    assert (a.sku, a.minutes, a.lost_units, a.ongoing) == ("a", 4.0, 12.0, False)
    assert (b.sku, b.minutes, b.ongoing) == ("b", 7.0, True)  # still out at the end
    episode = review.alerts[0]
    assert episode.where == "s1 a" and episode.resolved_at is not None
    assert episode.runbook_url.endswith("#stockout")


def test_alerts_and_phases_outside_the_range_are_left_out() -> None:
    windows = [window(T0 + i * MIN) for i in range(5)]
    records = [alert("firing", "TrafficDrop", T0 + 10 * MIN, None, store_id="s1")]
    phases = [PhaseSpan("rush", T0 + MIN, T0 + 2 * MIN), PhaseSpan("later", T0 + 9 * MIN,
                                                                    T0 + 10 * MIN)]  # fmt: skip
    review = build_review(windows, records, phases)
    assert review.alerts == [] and [p.name for p in review.phases] == ["rush"]


def test_no_window_in_the_range_is_an_error() -> None:
    with pytest.raises(ReviewError, match="no window records"):
        build_review([window(T0)], [], since_ms=T0 + MIN)
