"""The review's one error."""

from streams.contract.errors import SalewatchError

__all__ = ["ReviewError"]


class ReviewError(SalewatchError, ValueError):
    """The review cannot be built from what it was given; the message says why."""
