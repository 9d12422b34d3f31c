"""Every panel of both dashboards shows data from a real worker, and the war room's sale
totals equal the simulator's ground truth.

A worker reads a small simulated sale (duplicates, late events, a sell-out, a SKU selling
down to a few minutes of stock, one bad message); the dev stack's Prometheus scrapes it.
Then every panel's queries run against Prometheus as Grafana would send them
(grafana/queries.py): the dashboard variables substituted (this run's stores, the
`sale_seconds` variable resolved by its own query) and Grafana's macros expanded. Queries
are narrowed to this run's scrape target (`run` label) so other workers on the shared
stack do not count.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from grafana.dashboards import build_dashboards
from grafana.queries import PanelQueries
from simulator import Incident, KeyMode, ScenarioConfig, generate, produce
from streams.funnel.aggregates import STAGES
from tests.support.alerts import unique_stores, wait_for, write_campaign
from tests.support.kafka import consume
from tests.support.kafka import produce as produce_raw
from tests.support.worker import WorkerFactory

pytestmark = pytest.mark.integration

Json = dict[str, Any]
WINDOW_MS, GRACE_MS = 10_000, 3_000


def panel(board: Json, title: str) -> Json:
    return next(p for p in board["panels"] if p["title"] == title)


def value_of(results: list[Json]) -> float:
    (sample,) = results
    return float(sample["value"][1])


def test_every_panel_has_data_and_the_totals_are_the_truth(
    workers: WorkerFactory, tmp_path: Path
) -> None:
    config = ScenarioConfig(
        seed=14,
        duration_s=120,
        base_rate=40,
        stores=2,
        skus_per_store=40,
        window_ms=WINDOW_MS,
        grace_ms=GRACE_MS,
        key_mode=KeyMode.RANDOM,
        late_rate=0.01,
        snapshot_interval_s=30,
        flash_sales=(),
        # one SKU sold out early, another selling down slowly: running low at the end
        incidents=(Incident("sellout", 20, None), Incident("selldown", 30, None, store=1)),
    )
    scenario = generate(config)
    prefix = f"p{workers.run_id}-"
    unique_stores(scenario, prefix)
    truth = scenario.truth
    bootstrap = workers.stack.kafka_bootstrap
    now = datetime.now(UTC)
    campaign = write_campaign(
        tmp_path / "campaign.yml",
        [{"name": "test-sale", "start": (now - timedelta(hours=1)).isoformat(),
          "end": (now + timedelta(hours=1)).isoformat()},
         # the ROI panel's spend, over the scenario's event time (windows are priced by it)
         {"name": "spend", "start": _iso(config.start_ms), "end": _iso(config.end_ms),
          "spend": {"app": 5000, "web": 1000}}],
    )  # fmt: skip
    workers.start(
        window_ms=WINDOW_MS,
        grace_ms=GRACE_MS,
        idle_ms=2_000,
        campaign_file=campaign,
        slow_moving_minutes=0.5,  # unsold SKUs of the 2-minute sale turn slow-moving
        alertmanager_url=workers.stack.alertmanager_url,
    )
    # sent to a running worker at 20x event time (6 s), so the rates see the events arrive
    # over several 1 s scrapes; all at once, a series is born with its final value: rate 0
    produce_raw(bootstrap, workers.input_topic("orders"), [b"{not json"])  # a dead letter
    produce(scenario, bootstrap, topic_prefix=workers.topic_prefix, speed=20)
    consume(bootstrap, workers.output_topic("windows"), len(truth.windows), timeout_s=120)

    grafana = PanelQueries(workers.stack.prometheus_url, run=workers.run_id, store=f"{prefix}.*")
    boards = build_dashboards()
    warroom = boards["salewatch-warroom.json"]
    paid = sum(w.paid_orders for w in truth.windows.values())

    def scraped() -> bool | None:  # the windows' last counts reached Prometheus
        grafana.resolve(warroom)
        shown = grafana.instant(
            panel(warroom, "Paid orders of the sale so far")["targets"][0]["expr"]
        )
        return True if shown and value_of(shown) == paid else None

    wait_for(scraped, timeout_s=30, interval_s=1)

    gmv = grafana.instant(panel(warroom, "GMV of the sale so far")["targets"][0]["expr"])
    truth_gmv = sum((w.gmv for w in truth.windows.values()), Decimal(0))
    assert [round(Decimal(s["value"][1]), 2) for s in gmv] == [truth_gmv]
    funnel = panel(warroom, "Funnel of the sale so far")
    shown = {t["legendFormat"]: value_of(grafana.instant(t["expr"])) for t in funnel["targets"]}
    assert shown == {s: sum(w.counts[s] for w in truth.windows.values()) for s in STAGES}

    (selling_down,) = [a for a in truth.expected_alerts if a.alertname == "LowStockSoon"]
    running_low = panel(warroom, "Running low (minutes to stock-out)")["targets"][0]["expr"]
    assert [s["metric"]["sku"] for s in grafana.instant(running_low)] == [
        selling_down.labels["sku"]
    ]

    empty = []
    for board in boards.values():
        grafana.resolve(board)
        for item in board["panels"]:
            if item["type"] != "row" and not any(
                grafana.instant(t["expr"]) for t in item["targets"]
            ):
                empty.append(f"{board['uid']}: {item['title']}")
    assert empty == []


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat()
