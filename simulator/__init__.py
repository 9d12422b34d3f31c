"""The Double 11 scenario generator, with ground truth computed while it generates.

from simulator import ScenarioConfig, Incident, generate, batches
scenario = generate(ScenarioConfig(seed=7, incidents=(Incident("sellout", 300, 480),)))
scenario.deliveries      # (topic suffix, key, event) in delivery order
scenario.truth           # windows, late events, duplicates, inventory, expected alerts
"""

from simulator.arrival import Arrival, starting_ago
from simulator.batching import Batch, Grouping, batches
from simulator.config import (
    CHANNELS,
    FlashSale,
    FunnelRates,
    Incident,
    IncidentKind,
    KeyMode,
    ScenarioConfig,
)
from simulator.errors import SimulatorError
from simulator.generator import generate
from simulator.placement import place_incidents
from simulator.producer import ProduceReport, produce, send
from simulator.scenario import Delivery, Scenario
from simulator.truth import ExpectedAlert, GroundTruth, WindowTruth
from simulator.writers import read_jsonl, read_truth, write_jsonl, write_truth

__all__ = [
    "CHANNELS",
    "Arrival",
    "Batch",
    "Delivery",
    "ExpectedAlert",
    "FlashSale",
    "FunnelRates",
    "GroundTruth",
    "Grouping",
    "Incident",
    "IncidentKind",
    "KeyMode",
    "ProduceReport",
    "Scenario",
    "ScenarioConfig",
    "SimulatorError",
    "WindowTruth",
    "batches",
    "generate",
    "place_incidents",
    "produce",
    "read_jsonl",
    "read_truth",
    "send",
    "starting_ago",
    "write_jsonl",
    "write_truth",
]
