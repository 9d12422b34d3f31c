"""Compare final window records of `salewatch.windows` with the simulator's ground truth."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from simulator.truth import WindowTruth

WindowId = tuple[str, str, int]  # store_id, channel, window start


def window_id(record: dict[str, Any]) -> WindowId:
    return record["store_id"], record["channel"], record["window_start"]


def field_differences(record: dict[str, Any], truth: WindowTruth) -> dict[str, list[str]]:
    """What differs between a window record and its truth, per field: `counts` (stages,
    payment_failed, refund_requested), `paid_orders`, `gmv`, `uv` (stages and visitors
    outside the sketch bounds), `aftersales` (refund amount, returns, complaints),
    `traffic` (page views, by source and category), `buyers` (new and returning); an
    empty list where they agree."""
    found: dict[str, list[str]] = {
        "counts": [], "paid_orders": [], "gmv": [], "uv": [],
        "aftersales": [], "traffic": [], "buyers": [],
    }  # fmt: skip
    if record["counts"] != truth.counts:
        found["counts"].append(f"counts {record['counts']} != {truth.counts}")
    for stage, users in truth.users.items():
        lower, upper = record["users_lower"][stage], record["users_upper"][stage]
        if not lower <= len(users) <= upper:
            found["uv"].append(f"{stage} users {len(users)} outside [{lower}, {upper}]")
    visitors = len(truth.visitors)
    if not record["visitors_lower"] <= visitors <= record["visitors_upper"]:
        found["uv"].append(
            f"visitors {visitors} outside [{record['visitors_lower']}, {record['visitors_upper']}]"
        )
    gmv = sum((Decimal(v) for v in record["gmv"].values()), Decimal(0))
    for field, name, got, expected in (
        ("gmv", "gmv", gmv, truth.gmv),
        ("paid_orders", "paid_orders", record["paid_orders"], truth.paid_orders),
        ("counts", "payment_failed", record["payment_failed"], truth.payment_failed),
        ("counts", "refund_requested", record["refund_requested"], truth.refund_requested),
        ("aftersales", "refund_amount", Decimal(record["refund_amount"]), truth.refund_amount),
        ("aftersales", "returns", record["returns"], truth.returns),
        ("aftersales", "complaints", record["complaints"], truth.complaints),
        ("traffic", "page_views", record["page_views"], truth.page_views),
        ("traffic", "by_source", record["by_source"], _traffic(truth.by_source)),
        ("traffic", "by_category", record["by_category"], _traffic(truth.by_category)),
        ("buyers", "new_buyers", record["new_buyers"], len(truth.new_buyers)),
        ("buyers", "returning_buyers", record["returning_buyers"], len(truth.returning_buyers)),
    ):
        if got != expected:
            found[field].append(f"{name} {got} != {expected}")
    return found


def window_differences(record: dict[str, Any], truth: WindowTruth) -> list[str]:
    """What differs between a window record and its truth (UV: outside the sketch bounds)."""
    return [text for texts in field_differences(record, truth).values() for text in texts]


def window_outcome(
    records: list[dict[str, Any]], truth: dict[WindowId, WindowTruth]
) -> dict[str, int]:
    """Every final window emitted, judged against the truth: how many are equal (the last
    record of a window, if it came twice), different, missing, not in the truth, twice."""
    emitted = Counter(window_id(record) for record in records)
    last = _last_records(records, truth)
    equal = sum(1 for wid, record in last.items() if not window_differences(record, truth[wid]))
    return {
        "expected": len(truth),
        "equal": equal,
        "different": len(last) - equal,
        "missing": len(set(truth) - set(emitted)),
        "unexpected": len(set(emitted) - set(truth)),
        "emitted twice": sum(1 for n in emitted.values() if n > 1),
    }


def difference_report(
    records: list[dict[str, Any]], truth: dict[WindowId, WindowTruth], limit: int = 12
) -> str:
    """The windows whose last record differs from the truth: how many, the span of their
    starts, the keys, and what differs in the first `limit` of them (a failure's message)."""
    last = _last_records(records, truth)
    different = {
        wid: texts for wid in sorted(last) if (texts := window_differences(last[wid], truth[wid]))
    }
    if not different:
        return "no window differs"
    starts = sorted({start for _, _, start in different})
    keys = sorted({(store, channel) for store, channel, _ in different})
    lines = [
        f"{len(different)} windows differ: {len(starts)} starts from {starts[0]} to "
        f"{starts[-1]}, {len(keys)} store/channel keys"
    ]
    lines += [f"  {wid}: {'; '.join(texts)}" for wid, texts in list(different.items())[:limit]]
    return "\n".join(lines)


def _last_records(
    records: list[dict[str, Any]], truth: dict[WindowId, WindowTruth]
) -> dict[WindowId, dict[str, Any]]:
    """The last record of each window the truth has (a window emitted twice: its last)."""
    return {window_id(record): record for record in records if window_id(record) in truth}


def _traffic(by_name: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    return {name: {"impression": pair[0], "click": pair[1]} for name, pair in by_name.items()}
