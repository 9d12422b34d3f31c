"""What the store SDK raises: kinds of `streams.contract.errors.SalewatchError`."""

from __future__ import annotations

from streams.contract.decoding import RejectReason
from streams.contract.errors import SalewatchError

__all__ = ["ClientClosedError", "DeliveryError", "InvalidEventError", "SdkError"]


class SdkError(SalewatchError):
    """Root of the store SDK's errors."""


class InvalidEventError(SdkError):
    """An event breaks the contract; nothing was sent.

    `reason` and `detail` are exactly what a worker would write in the dead-letter headers
    `salewatch.error.reason` and `salewatch.error.detail` for the same event.
    """

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class DeliveryError(SdkError):
    """Kafka did not acknowledge some messages (after the producer's own retries)."""

    def __init__(self, failed_messages: int, failed_events: int, cause: BaseException) -> None:
        super().__init__(
            f"{failed_messages} message(s) with {failed_events} event(s) not delivered: {cause!r}"
        )
        self.failed_messages = failed_messages
        self.failed_events = failed_events


class ClientClosedError(SdkError):
    """The client was closed; create a new one to send more events."""
