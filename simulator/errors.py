"""The simulator's exception, a kind of salewatch's one root exception."""

from __future__ import annotations

from streams.contract.errors import SalewatchError

__all__ = ["SimulatorError"]


class SimulatorError(SalewatchError):
    """An invalid scenario configuration, or a scenario that cannot be produced."""
