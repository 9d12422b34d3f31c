"""What a scenario looks like: traffic, catalogue, behaviour, delivery faults, incidents.

Times inside a scenario are offsets in seconds from `ScenarioConfig.start` (event time);
the ground truth reports absolute epoch milliseconds.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import datetime

from simulator.clock import CST, epoch_ms, next_local_midnight_ms
from simulator.errors import SimulatorError

__all__ = [
    "CHANNELS",
    "FlashSale",
    "FunnelRates",
    "Incident",
    "IncidentKind",
    "KeyMode",
    "ScenarioConfig",
]

CHANNELS = ("app", "web", "miniapp", "live")
_CHANNEL_WEIGHTS = (0.55, 0.15, 0.20, 0.10)
_MAX_WINDOW_MS = 10 * 60_000


class IncidentKind(enum.StrEnum):
    """Faults that can be injected; each maps to the alert it must raise."""

    SELLOUT = "sellout"  # a hot SKU of a store sells out while orders keep coming
    SELLDOWN = "selldown"  # a hot SKU of a store sells down to a few minutes of stock left
    PAYMENT_OUTAGE = "payment_outage"  # one store x channel: most payment attempts fail
    BROKEN_CHECKOUT = "broken_checkout"  # one store (all or one channel): cart -> order collapses
    BROKEN_PAY = "broken_pay"  # like broken_checkout at the pay step: no payment is attempted
    REFUND_WAVE = "refund_wave"  # one store: refund requests x5
    COMPLAINT_WAVE = "complaint_wave"  # one store: complaints x10
    TRAFFIC_STOP = "traffic_stop"  # one store x channel: no more events


class KeyMode(enum.StrEnum):
    """How Kafka message keys are chosen; the pipeline must not care."""

    STORE = "store"  # UTF-8 store_id (recommended by the contract)
    USER = "user"  # user_id, store_id for events without a user
    RANDOM = "random"  # one of a few random tokens per event
    NONE = "none"  # no key


# strength of each incident kind when `Incident.factor` is None
_DEFAULT_FACTOR = {
    IncidentKind.SELLOUT: 10.0,  # extra impressions/s on the hot SKU during the incident
    IncidentKind.SELLDOWN: 10.0,  # minutes of stock left at the incident's end, at its rate
    IncidentKind.PAYMENT_OUTAGE: 0.85,  # probability that a payment attempt fails
    IncidentKind.BROKEN_CHECKOUT: 0.05,  # multiplier of the cart -> order probability
    IncidentKind.BROKEN_PAY: 0.05,  # multiplier of the probability of a payment attempt
    IncidentKind.REFUND_WAVE: 5.0,  # multiplier of the refund probability
    IncidentKind.COMPLAINT_WAVE: 10.0,  # multiplier of the complaint probability
    IncidentKind.TRAFFIC_STOP: 0.0,  # multiplier of the traffic
}


@dataclass(frozen=True)
class Incident:
    """One injected fault, from `start_s` to `end_s` (offsets from the scenario start).

    `end_s=None` lasts to the end of the scenario. `store` is a store index (0 = flagship).
    `channel`: payment_outage and traffic_stop default to the first channel; broken_checkout
    hits every channel of the store unless one is named. `sku`: sellout and selldown default
    to the store's hottest SKU not taken by another of them. `factor`: see `default_factor`.
    """

    kind: IncidentKind | str  # an IncidentKind once constructed
    start_s: float
    end_s: float | None = None
    store: int = 0
    channel: str | None = None
    sku: str | None = None
    factor: float | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", IncidentKind(self.kind))
        except ValueError:
            kinds = ", ".join(kind.value for kind in IncidentKind)
            raise SimulatorError(f"unknown incident {self.kind!r} (one of {kinds})") from None
        if self.start_s < 0 or (self.end_s is not None and self.end_s <= self.start_s):
            raise SimulatorError(f"incident {self.kind}: need 0 <= start_s < end_s")

    @property
    def strength(self) -> float:
        return _DEFAULT_FACTOR[IncidentKind(self.kind)] if self.factor is None else self.factor

    @staticmethod
    def default_factor(kind: IncidentKind | str) -> float:
        return _DEFAULT_FACTOR[IncidentKind(kind)]


@dataclass(frozen=True)
class FlashSale:
    """A scheduled flash sale: extra sessions on a few SKUs of one store, at a lower price.

    `surge` is the extra session rate as a multiple of the store's normal session rate;
    `price_factor` multiplies the unit price of the SKUs on sale while it runs.
    """

    start_s: float
    end_s: float
    store: int = 0
    skus: int = 3
    surge: float = 2.0
    price_factor: float = 0.6

    def __post_init__(self) -> None:
        if not 0 <= self.start_s < self.end_s:
            raise SimulatorError("flash sale: need 0 <= start_s < end_s")
        if self.skus < 1 or self.surge < 0 or not 0 < self.price_factor <= 1:
            raise SimulatorError("flash sale: need skus >= 1, surge >= 0, 0 < price_factor <= 1")


@dataclass(frozen=True)
class FunnelRates:
    """Per-step behaviour probabilities; the defaults give click/impression ~10%,
    cart/click ~20%, order/cart ~40%, pay/order ~85%, payment failure rate ~4%."""

    impressions_per_session: float = 4.0  # mean, geometric
    click: float = 0.10  # per impression
    cart: float = 0.20  # per click
    cart_remove: float = 0.10  # per cart_add: the item is taken out again
    order: float = 0.5  # per session with items in the cart
    extra_lines: tuple[float, ...] = (0.55, 0.2, 0.12, 0.08, 0.05)  # P(0..4 lines carted before)
    attempt: float = 0.88  # an order gets a payment attempt (else abandoned)
    payment_fail: float = 0.04  # per attempt
    retry: float = 0.7  # after a failed attempt
    max_attempts: int = 3
    cancel_unpaid: float = 0.7  # unpaid orders cancelled after the payment timeout
    refund: float = 0.03  # per paid order
    refund_line: float = 0.6  # a refund names one line (sku, qty) rather than the whole order
    refund_complete: float = 0.7
    return_goods: float = 0.5  # per line refund: goods come back
    return_restock: float = 0.85  # returned goods go back to stock
    complaint: float = 0.004  # per paid order

    def __post_init__(self) -> None:
        probabilities = (
            self.click,
            self.cart,
            self.cart_remove,
            self.order,
            self.attempt,
            self.payment_fail,
            self.retry,
            self.cancel_unpaid,
            self.refund,
            self.refund_line,
            self.refund_complete,
            self.return_goods,
            self.return_restock,
            self.complaint,
        )
        if any(not 0 <= p <= 1 for p in probabilities):
            raise SimulatorError("funnel rates must be probabilities in [0, 1]")
        if self.impressions_per_session < 1 or self.max_attempts < 1:
            raise SimulatorError("need impressions_per_session >= 1 and max_attempts >= 1")
        if len(self.extra_lines) != 5 or not math.isclose(sum(self.extra_lines), 1.0):
            raise SimulatorError("extra_lines: 5 probabilities (0..4 extra lines) summing to 1")

    def events_per_session(self) -> float:
        """Expected events of one ordinary session (without inventory), for rate targets."""
        impressions = self.impressions_per_session
        clicks = impressions * self.click
        carts = clicks * self.cart
        removes = carts * self.cart_remove
        # P(at least one cart item left) ~ expected kept items for these small probabilities
        orders = carts * (1 - self.cart_remove) * self.order
        attempts = self.attempt * (1 + self.payment_fail * self.retry * 1.1)
        paid = self.attempt * (1 - self.payment_fail**self.max_attempts)
        unpaid = 1 - paid
        aftersales = paid * (self.refund * 2.0 + self.complaint)
        per_order = 1 + attempts + unpaid * self.cancel_unpaid + aftersales
        return impressions + clicks + carts + removes + orders * per_order


def _default_start() -> datetime:
    return datetime(2026, 11, 10, 23, 50, tzinfo=CST)


def _default_flash_sales() -> tuple[FlashSale, ...]:
    return (FlashSale(start_s=900.0, end_s=1080.0),)


@dataclass(frozen=True)
class ScenarioConfig:
    """A Double 11 scenario. The same config (and seed) always gives the same scenario."""

    seed: int = 0
    start: datetime = field(default_factory=_default_start)
    duration_s: float = 1200.0
    base_rate: float = 200.0  # events/s at the normal level, all stores and channels
    stores: int = 4
    flagship_share: float = 0.5  # store 0's share of the traffic
    store_weights: tuple[float, ...] | None = None  # explicit shares per store (relative)
    channels: tuple[str, ...] = CHANNELS
    channel_weights: tuple[float, ...] = _CHANNEL_WEIGHTS
    skus_per_store: int = 2000
    zipf_s: float = 1.05  # popularity exponent of the SKUs' long tail
    users: int = 200_000
    funnel: FunnelRates = field(default_factory=FunnelRates)
    # the midnight rush: x rush_multiplier from rush_at (default: the next local midnight)
    rush_multiplier: float = 20.0
    rush_minutes: float = 2.0
    rush_at: datetime | None = None
    flash_sales: tuple[FlashSale, ...] = field(default_factory=_default_flash_sales)
    incidents: tuple[Incident, ...] = ()
    # event time (docs/architecture.md)
    window_ms: int = 60_000
    grace_ms: int = 30_000
    dedup_horizon_ms: int = 15 * 60_000
    # running low, as the worker judges it (SALEWATCH_LOW_STOCK_MINUTES,
    # SALEWATCH_VELOCITY_HALF_LIFE_MS): the selldown incident's expected LowStockSoon
    low_stock_minutes: float = 30.0
    velocity_half_life_ms: int = 5 * 60_000
    # buyers: a paid order is a first purchase when the user paid at the store no more
    # recently than this (SALEWATCH_BUYER_LOOKBACK_MS); `first_purchase_flag_rate` of the
    # orders carry the store's own `first_purchase` flag (users whose number ends in 0 or 5
    # bought before the sale: the store says so)
    buyer_lookback_ms: int = 365 * 24 * 3600_000
    first_purchase_flag_rate: float = 0.3
    # delivery faults
    duplicate_rate: float = 0.01  # exact re-sends (same event_id)
    out_of_order_rate: float = 0.05  # delivered up to grace/2 after their ts order
    late_rate: float = 0.002  # delivered over 3x grace after their window closed
    late_duplicate_rate: float = 0.0  # re-sends of on-time events delivered that late
    # client retries: an order_created / order_paid sent again with a new event_id, its ts
    # a little before or after the first one (sometimes in another window)
    order_retry_rate: float = 0.0
    key_mode: KeyMode | str = KeyMode.STORE  # a KeyMode once constructed
    # representation mix
    iso_ts_rate: float = 0.3  # share of events whose ts is ISO-8601 rather than epoch ms
    string_money_rate: float = 0.5  # share of money values sent as decimal strings
    # inventory
    snapshot_interval_s: float = 300.0
    restocks_per_store_minute: float = 1.0
    adjusts_per_store_minute: float = 1.0
    inventory_channel: str = "warehouse"  # `channel` of inventory events
    run_id: str | None = None  # prefix of every id; default "r<seed>"

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_mode", _coerce_key_mode(self.key_mode))
        object.__setattr__(self, "incidents", tuple(self.incidents))
        object.__setattr__(self, "flash_sales", tuple(self.flash_sales))
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "channel_weights", tuple(self.channel_weights))
        self._validate()

    def _validate(self) -> None:
        def need(condition: bool, message: str) -> None:
            if not condition:
                raise SimulatorError(message)

        need(self.start.tzinfo is not None, "start needs a time zone")
        need(self.start.microsecond % 1000 == 0, "start must be a whole millisecond")
        need(self.duration_s > 0, "duration_s must be positive")
        need(self.base_rate > 0, "base_rate must be positive")
        need(self.stores >= 1, "stores must be >= 1")
        need(0 < self.flagship_share <= 1, "flagship_share must be in (0, 1]")
        need(
            self.store_weights is None
            or (len(self.store_weights) == self.stores and all(w > 0 for w in self.store_weights)),
            "store_weights: one positive weight per store",
        )
        need(len(self.channels) >= 1, "need at least one channel")
        need(len(set(self.channels)) == len(self.channels), "channels must be distinct")
        need(
            len(self.channel_weights) == len(self.channels)
            and all(w > 0 for w in self.channel_weights),
            "channel_weights: one positive weight per channel",
        )
        need(self.skus_per_store >= 10, "skus_per_store must be >= 10")
        need(self.users >= 1, "users must be >= 1")
        need(self.rush_multiplier > 0 and self.rush_minutes >= 0, "bad rush settings")
        need(self.window_ms > 0 and self.grace_ms >= 0, "need window_ms > 0 and grace_ms >= 0")
        need(self.window_ms <= _MAX_WINDOW_MS, "window_ms must be <= 10 minutes")
        need(self.dedup_horizon_ms >= self.grace_ms, "dedup_horizon_ms must be >= grace_ms")
        need(self.buyer_lookback_ms > 0, "buyer_lookback_ms must be positive")
        for name in (
            "duplicate_rate",
            "out_of_order_rate",
            "late_rate",
            "late_duplicate_rate",
            "order_retry_rate",
            "first_purchase_flag_rate",
            "iso_ts_rate",
            "string_money_rate",
        ):
            need(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1]")
        need(
            self.out_of_order_rate + self.late_rate <= 1,
            "out_of_order_rate + late_rate must be <= 1",
        )
        need(
            self.grace_ms >= 2 or (self.out_of_order_rate == 0 and self.duplicate_rate == 0),
            "out-of-order delivery and duplicates need grace_ms >= 2",
        )
        need(self.snapshot_interval_s >= 1, "snapshot_interval_s must be >= 1")
        need(
            self.restocks_per_store_minute >= 0 and self.adjusts_per_store_minute >= 0,
            "restock and adjust rates must be >= 0",
        )
        for incident in self.incidents:
            need(0 <= incident.store < self.stores, f"incident {incident.kind}: no such store")
            need(
                incident.channel is None or incident.channel in self.channels,
                f"incident {incident.kind}: unknown channel {incident.channel!r}",
            )
        for sale in self.flash_sales:
            need(0 <= sale.store < self.stores, "flash sale: no such store")
            need(sale.skus <= self.skus_per_store, "flash sale: more SKUs than the store has")
        if self.run_id is not None:
            need(
                0 < len(self.run_id) <= 24 and self.run_id.replace("-", "").isalnum(),
                "run_id: 1-24 letters, digits or '-'",
            )

    # --- derived values -------------------------------------------------------------------
    @property
    def start_ms(self) -> int:
        return epoch_ms(self.start)

    @property
    def end_ms(self) -> int:
        """Exclusive: every event has start_ms <= ts < end_ms."""
        return self.start_ms + round(self.duration_s * 1000)

    @property
    def rush_start_ms(self) -> int:
        if self.rush_at is not None:
            return epoch_ms(self.rush_at)
        return next_local_midnight_ms(self.start_ms)

    @property
    def rush_end_ms(self) -> int:
        return self.rush_start_ms + round(self.rush_minutes * 60_000)

    @property
    def id_prefix(self) -> str:
        return self.run_id if self.run_id is not None else f"r{self.seed}"

    def at_ms(self, offset_s: float) -> int:
        """Absolute epoch ms of an offset (seconds) from the scenario start."""
        return self.start_ms + round(offset_s * 1000)


def _coerce_key_mode(value: KeyMode | str) -> KeyMode:
    try:
        return KeyMode(value)
    except ValueError:
        modes = ", ".join(mode.value for mode in KeyMode)
        raise SimulatorError(f"unknown key mode {value!r} (one of {modes})") from None
