"""Default times for incidents named without times (the command line's `--incident KIND`).

Each gets `length_s` (3 windows by default) after a baseline of `warmup_s`, one after the
other with a gap, clear of the midnight rush and of flash sales, so that every incident
stands on its own against a steady baseline.
"""

from __future__ import annotations

import dataclasses

from simulator.config import Incident, ScenarioConfig
from simulator.errors import SimulatorError

__all__ = ["place_incidents"]


def place_incidents(
    config: ScenarioConfig,
    incidents: list[Incident | str],
    warmup_s: float = 300.0,
    length_s: float = 180.0,
    gap_s: float = 60.0,
) -> ScenarioConfig:
    """The config with these incidents added; kinds given as strings get default times."""
    busy = [
        (
            (config.rush_start_ms - config.start_ms) / 1000 - gap_s,
            (config.rush_end_ms - config.start_ms) / 1000 + 2 * gap_s,
        ),
        *((sale.start_s - gap_s, sale.end_s + gap_s) for sale in config.flash_sales),
    ]
    placed: list[Incident] = []
    cursor = warmup_s
    for incident in incidents:
        if isinstance(incident, Incident):
            placed.append(incident)
            continue
        start = _free_slot(cursor, length_s, busy)
        if start + length_s > config.duration_s:
            raise SimulatorError(
                f"no room for incident {incident!r} in {config.duration_s:.0f} s "
                f"(needs {start + length_s:.0f} s): give a longer duration or explicit times"
            )
        placed.append(Incident(incident, start_s=start, end_s=start + length_s))  # type: ignore[arg-type]
        cursor = start + length_s + gap_s
    return dataclasses.replace(config, incidents=(*config.incidents, *placed))


def _free_slot(start: float, length: float, busy: list[tuple[float, float]]) -> float:
    moved = True
    while moved:
        moved = False
        for low, high in busy:
            if start < high and start + length > low:
                start = high
                moved = True
    return start
