"""The event contract (docs/contract.md §1-2) as pydantic models.

One model per event `type`; each input topic accepts a tagged union of its types. Unknown
extra fields are ignored, known ones are validated strictly (no "5" for 5). `ts` accepts
ISO-8601 with an offset or epoch milliseconds and is held as epoch milliseconds; it may not
lie more than `max_future_ms` ahead of the clock passed in the validation context.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)

__all__ = [
    "TOPIC_TYPES",
    "Event",
    "TopicKind",
    "event_adapter",
]

MAX_MONEY = Decimal("1e9")
DEFAULT_MAX_FUTURE_MS = 5 * 60 * 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


class TopicKind(enum.StrEnum):
    """The five input topics, by the suffix that follows the topic prefix."""

    CLICKS = "clicks"
    CARTS = "carts"
    ORDERS = "orders"
    AFTERSALES = "aftersales"
    INVENTORY = "inventory"


Id64 = Annotated[str, Field(min_length=1, max_length=64)]
Text128 = Annotated[str, Field(max_length=128)]
Qty = Annotated[StrictInt, Field(ge=1, le=10_000)]
Money = Annotated[Decimal, Field(ge=0, le=MAX_MONEY, allow_inf_nan=False)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


def _parse_ts(value: Any) -> int:
    """ISO-8601 with offset or epoch milliseconds -> epoch milliseconds."""
    if isinstance(value, bool):
        raise ValueError("ts must be an ISO-8601 string or epoch milliseconds")
    if isinstance(value, int):
        if not 0 <= value < 10**14:
            raise ValueError("ts epoch milliseconds out of range")
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("ts is not ISO-8601") from None
        if parsed.tzinfo is None:
            raise ValueError("ts needs a UTC offset, e.g. +08:00 or Z")
        return (parsed - _EPOCH) // _ONE_MS
    raise ValueError("ts must be an ISO-8601 string or epoch milliseconds")


class EventBase(BaseModel):
    """Fields common to every event."""

    model_config = ConfigDict(extra="ignore")

    event_id: Id64
    ts: int
    store_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
    channel: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")]
    user_id: Text128 | None = None
    session_id: Text128 | None = None

    @field_validator("ts", mode="plain")
    @classmethod
    def _ts(cls, value: Any, info: ValidationInfo) -> int:
        ts_ms = _parse_ts(value)
        context = info.context or {}
        now_ms = context.get("now_ms")
        if now_ms is not None:
            max_future_ms = context.get("max_future_ms", DEFAULT_MAX_FUTURE_MS)
            if ts_ms > now_ms + max_future_ms:
                raise ValueError(
                    f"future_timestamp: ts is {ts_ms - now_ms} ms ahead of the worker clock"
                )
        return ts_ms


class UserEvent(EventBase):
    """Clicks, carts and orders must name the (pseudonymous) user."""

    user_id: Text128


# --- shop.clicks -----------------------------------------------------------------------
class ClickStreamEvent(UserEvent):
    sku: Id64
    category: Annotated[str, Field(max_length=64)] | None = None
    source: Annotated[str, Field(max_length=32)] | None = None


class Impression(ClickStreamEvent):
    type: Literal["impression"]


class Click(ClickStreamEvent):
    type: Literal["click"]


# --- shop.carts ------------------------------------------------------------------------
class CartEvent(UserEvent):
    sku: Id64
    qty: Qty
    unit_price: Money | None = None


class CartAdd(CartEvent):
    type: Literal["cart_add"]


class CartRemove(CartEvent):
    type: Literal["cart_remove"]


# --- shop.orders -----------------------------------------------------------------------
class OrderLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sku: Id64
    qty: Qty
    unit_price: Money


class OrderEvent(UserEvent):
    order_id: Id64
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=500)]
    amount: Money
    currency: Currency = "CNY"


class OrderCreated(OrderEvent):
    type: Literal["order_created"]


class OrderPaid(OrderEvent):
    type: Literal["order_paid"]
    # the store's own answer to "the buyer's first paid order here?": overrides salewatch's
    # lookup of the buyer's history (docs/contract.md, new and returning buyers)
    first_purchase: StrictBool | None = None


class PaymentFailed(OrderEvent):
    type: Literal["payment_failed"]
    reason: Text128 | None = None


class OrderCancelled(OrderEvent):
    type: Literal["order_cancelled"]


# --- shop.aftersales -------------------------------------------------------------------
class RefundEvent(EventBase):
    order_id: Id64
    amount: Money
    sku: Id64 | None = None
    qty: Qty | None = None
    reason: Text128 | None = None


class RefundRequested(RefundEvent):
    type: Literal["refund_requested"]


class RefundCompleted(RefundEvent):
    type: Literal["refund_completed"]


class ReturnReceived(EventBase):
    type: Literal["return_received"]
    order_id: Id64
    sku: Id64
    qty: Qty
    restock: StrictBool = True


class Complaint(EventBase):
    type: Literal["complaint"]
    order_id: Id64 | None = None
    reason: Text128 | None = None


# --- shop.inventory --------------------------------------------------------------------
class StockSnapshot(EventBase):
    type: Literal["stock_snapshot"]
    sku: Id64
    available: Annotated[StrictInt, Field(ge=0, le=10**12)]


class Restock(EventBase):
    type: Literal["restock"]
    sku: Id64
    qty: Annotated[StrictInt, Field(ge=1, le=1_000_000)]


class StockAdjust(EventBase):
    type: Literal["stock_adjust"]
    sku: Id64
    delta: Annotated[StrictInt, Field(ge=-1_000_000, le=1_000_000)]
    reason: Text128 | None = None

    @field_validator("delta")
    @classmethod
    def _non_zero(cls, delta: int) -> int:
        if delta == 0:
            raise ValueError("delta must not be zero")
        return delta


Event = (
    Impression
    | Click
    | CartAdd
    | CartRemove
    | OrderCreated
    | OrderPaid
    | PaymentFailed
    | OrderCancelled
    | RefundRequested
    | RefundCompleted
    | ReturnReceived
    | Complaint
    | StockSnapshot
    | Restock
    | StockAdjust
)

_MODELS_BY_TOPIC: dict[TopicKind, tuple[type[EventBase], ...]] = {
    TopicKind.CLICKS: (Impression, Click),
    TopicKind.CARTS: (CartAdd, CartRemove),
    TopicKind.ORDERS: (OrderCreated, OrderPaid, PaymentFailed, OrderCancelled),
    TopicKind.AFTERSALES: (RefundRequested, RefundCompleted, ReturnReceived, Complaint),
    TopicKind.INVENTORY: (StockSnapshot, Restock, StockAdjust),
}

TOPIC_TYPES: dict[TopicKind, frozenset[str]] = {
    kind: frozenset(model.model_fields["type"].annotation.__args__[0] for model in models)  # type: ignore[union-attr]
    for kind, models in _MODELS_BY_TOPIC.items()
}


def event_adapter(kind: TopicKind) -> TypeAdapter[Any]:
    """A validator for one event of the given topic, tagged by `type`."""
    models = _MODELS_BY_TOPIC[kind]
    union: Any = models[0]
    for model in models[1:]:
        union = union | model
    return TypeAdapter(Annotated[union, Field(discriminator="type")])
