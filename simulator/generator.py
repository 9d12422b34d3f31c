"""`generate(config) -> Scenario`: traffic, inventory, delivery faults and the ground truth."""

from __future__ import annotations

import gc
import random
from collections.abc import Callable
from operator import itemgetter

from simulator.accounting import account
from simulator.alerts import derive_alerts
from simulator.catalog import Catalog
from simulator.config import ScenarioConfig
from simulator.delivery import schedule
from simulator.incidents import IncidentPlan
from simulator.inventory import InventoryPlanner
from simulator.ledger import StockLedger
from simulator.scenario import Delivery, Scenario
from simulator.sessions import Shoppers
from simulator.sink import EventSink
from simulator.topics import TOPICS
from simulator.traffic import FlashPlan, Traffic

__all__ = ["Progress", "generate"]

Progress = Callable[[str, float], None]  # (phase, fraction done)

_FLASH_RANKS = range(5, 60)  # flash sales pick popular, not top, SKUs


def generate(config: ScenarioConfig, progress: Progress | None = None) -> Scenario:
    """Generate a scenario; the same config always gives the same scenario."""
    # millions of new dicts would trigger the cyclic collector over and over (2x slower);
    # nothing made here is cyclic garbage
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(config, progress)
    finally:
        if enabled:
            gc.enable()


def _generate(config: ScenarioConfig, progress: Progress | None) -> Scenario:
    seed = config.seed

    def stream(name: str) -> random.Random:
        return random.Random(f"{seed}/{name}")  # str seeds hash stably (sha512)

    def report(phase: str, done: float) -> None:
        if progress is not None:
            progress(phase, done)

    catalog = Catalog.build(config, stream("catalog"))
    plan = IncidentPlan(config, catalog)
    behaviour = stream("behaviour")
    sink = EventSink(config, behaviour)
    ledger = StockLedger(config.skus_per_store)
    for incident in (*plan.sellouts, *plan.selldowns):
        assert incident.sku_rank is not None
        ledger.protect(incident.store, incident.sku_rank, incident.end_ms)
    shoppers = Shoppers(config, catalog, plan, sink, ledger, behaviour)
    flash = _flash_plans(config, stream("flash"))
    for sale in flash:
        shoppers.add_flash_prices(
            sale.store, sale.start_ms, sale.end_ms, sale.ranks, sale.price_factor
        )

    traffic = Traffic(config, catalog, plan, flash, shoppers, behaviour)
    traffic.run(None if progress is None else lambda done: report("sessions", done))
    outcome = InventoryPlanner(config, catalog, plan, ledger, sink, stream("inventory")).run()
    report("inventory", 1.0)

    records = sink.records
    records.sort(key=itemgetter(0))
    scheduled = schedule(records, config, stream("delivery"), sink.held_ms)
    report("delivery", 1.0)

    truth = account(scheduled, config)
    truth.inventory = outcome.final
    truth.last_sale_ms = outcome.last_sale
    truth.expected_alerts, truth.allowed_alerts = derive_alerts(
        config, plan, [*outcome.stockouts, *outcome.running_low], truth
    )
    truth.incidents = [incident.to_dict() for incident in plan.incidents]
    truth.notes = list(outcome.notes)
    designated = {item[4]["event_id"] for item in scheduled if item[6]}
    if designated != truth.late_event_ids:
        truth.notes.append(
            f"{len(designated ^ truth.late_event_ids)} events are late or not only because "
            "of sparse traffic: the late rule may differ between partitions"
        )
    report("truth", 1.0)

    deliveries = [Delivery(TOPICS[item[2]], item[3], item[4]) for item in scheduled]
    delivered_at = [item[0] for item in scheduled]
    return Scenario(config, deliveries, delivered_at, truth)


def _flash_plans(config: ScenarioConfig, rng: random.Random) -> list[FlashPlan]:
    plans = []
    for sale in config.flash_sales:
        start_ms = config.at_ms(sale.start_s)
        if start_ms >= config.end_ms:
            continue
        population = [r for r in _FLASH_RANKS if r < config.skus_per_store]
        if len(population) < sale.skus:
            population = list(range(config.skus_per_store))
        ranks = tuple(sorted(rng.sample(population, sale.skus)))
        end_ms = min(config.at_ms(sale.end_s), config.end_ms)
        plans.append(FlashPlan(sale.store, start_ms, end_ms, ranks, sale.surge, sale.price_factor))
    return plans
