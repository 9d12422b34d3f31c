"""The salewatch store SDK: validated, batched, idempotent event delivery to Kafka."""

from sdk.client import DeliveryStats, StoreClient
from sdk.errors import ClientClosedError, DeliveryError, InvalidEventError, SdkError
from sdk.privacy import Pseudonymiser
from sdk.validation import EVENT_TYPES, EventValidator

__all__ = [
    "EVENT_TYPES",
    "ClientClosedError",
    "DeliveryError",
    "DeliveryStats",
    "EventValidator",
    "InvalidEventError",
    "Pseudonymiser",
    "SdkError",
    "StoreClient",
]
