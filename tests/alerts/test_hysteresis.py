"""k-of-n firing, m clean windows to resolve, undecided windows held."""

from __future__ import annotations

from alerts.hysteresis import Change, Hysteresis
from alerts.thresholds import HysteresisRule

RULE = HysteresisRule(fire_k=2, fire_n=3, resolve_m=3)


def run(results: list[bool | None], h: Hysteresis | None = None) -> list[Change | None]:
    h = h or Hysteresis()
    return [h.update(i * 10_000, breach, RULE) for i, breach in enumerate(results)]


def test_a_single_odd_window_does_not_fire() -> None:
    assert run([True, False, False, True, False, False]) == [None] * 6


def test_fires_on_k_of_n_and_remembers_the_first_breach() -> None:
    h = Hysteresis()
    assert run([False, True, False, True], h) == [None, None, None, Change.FIRE]
    assert h.firing and h.since_ms == 10_000


def test_resolves_only_after_m_clean_windows_in_a_row() -> None:
    changes = run([True, True, False, False, True, False, False, False])
    assert changes == [None, Change.FIRE, None, None, None, None, None, Change.RESOLVE]


def test_undecided_windows_neither_fire_nor_resolve() -> None:
    changes = run([True, None, None, True, None, None, None, False, False, False])
    assert changes[3] is Change.FIRE
    assert changes.count(Change.RESOLVE) == 1 and changes[-1] is Change.RESOLVE


def test_round_trip() -> None:
    h = Hysteresis()
    run([True, True, False], h)
    assert Hysteresis.from_json(h.to_json()) == h
