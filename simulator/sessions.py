"""Shoppers: one session from impressions to payment, cancellation and after-sales.

impression -> click -> cart_add (sometimes cart_remove) -> order_created -> order_paid or
payment_failed (with retries) -> sometimes order_cancelled; paid orders sometimes bring
refund_requested / refund_completed, return_received (with restock) and complaints.
Each step follows the previous one by about half a second (retries and refund requests
too), far less than a window (even a 10 s one), so a traffic step such as the midnight rush
leaves every window's step conversions, payment failure and refund rates steady.
With `order_retry_rate`, some order_created / order_paid events are sent twice by a client
retry: a new event_id, its ts a little before or after the first (sometimes in another
window), delivered after the first.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from simulator.catalog import Catalog
from simulator.config import ScenarioConfig
from simulator.incidents import IncidentPlan
from simulator.ledger import HOLD, RELEASE, RETURN, StockLedger
from simulator.sink import EventSink, Money, as_money
from simulator.topics import AFTERSALES, CARTS, CLICKS, ORDERS

__all__ = ["Focus", "Shoppers"]

_CENT = Decimal("0.01")
_THRESHOLD = Decimal(300)  # Double 11 style: 50 off every full 300
_OFF = Decimal(50)
_COUPONS = (Decimal("0.05"), Decimal("0.08"), Decimal("0.10"))
_SOURCES = ("search", "recommend", "ad", "search", "recommend", "cart_reminder")
_FAIL_REASONS = ("bank_declined", "insufficient_funds", "gateway_timeout", "risk_control")
_REFUND_REASONS = ("changed_mind", "wrong_size", "not_as_described", "price_protection")
_COMPLAINT_REASONS = ("late_delivery", "damaged_goods", "oversold", "charged_twice")


@dataclass(frozen=True)
class Focus:
    """Sessions drawn to a few SKUs (a flash sale, a hot SKU): `share` of their impressions."""

    ranks: tuple[int, ...]
    share: float = 0.8


@dataclass
class _FlashPrice:
    start_ms: int
    end_ms: int
    ranks: frozenset[int]
    prices: dict[int, Money]


class Shoppers:
    """Generates whole sessions into the sink and their stock changes into the ledger."""

    def __init__(
        self,
        config: ScenarioConfig,
        catalog: Catalog,
        plan: IncidentPlan,
        sink: EventSink,
        ledger: StockLedger,
        rng: random.Random,
    ) -> None:
        self._config = config
        self._catalog = catalog
        self._plan = plan
        self._sink = sink
        self._ledger = ledger
        self._rng = rng
        self._funnel = config.funnel
        self._prices: list[list[Money]] = [
            [as_money(price) for price in store.prices] for store in catalog.stores
        ]
        self._flash: dict[int, list[_FlashPrice]] = {}
        self.sessions = 0
        self._paid_users: set[str] = set()  # for the store's `first_purchase` flag

    def add_flash_prices(
        self, store: int, start_ms: int, end_ms: int, ranks: tuple[int, ...], factor: float
    ) -> None:
        base = self._catalog.store(store).prices
        prices = {
            rank: as_money((base[rank] * Decimal(str(factor))).quantize(_CENT, ROUND_HALF_UP))
            for rank in ranks
        }
        entry = _FlashPrice(start_ms, end_ms, frozenset(ranks), prices)
        self._flash.setdefault(store, []).append(entry)

    def _price(self, store: int, rank: int, ts_ms: int) -> Money:
        for sale in self._flash.get(store, ()):
            if rank in sale.ranks and sale.start_ms <= ts_ms < sale.end_ms:
                return sale.prices[rank]
        return self._prices[store][rank]

    # --- one session ----------------------------------------------------------------------
    def session(self, store: int, channel: int, start_ms: float, focus: Focus | None) -> None:
        """One shopper's visit, with everything that follows from it (orders, refunds)."""
        self.sessions += 1
        rng = self._rng
        rnd = rng.random
        expo = rng.expovariate
        sink = self._sink
        add = sink.add
        next_id = sink.next_id
        ts_value = sink.ts_value
        money = sink.money
        place = sink.place
        end_ms = sink.end_ms
        funnel = self._funnel
        catalog = self._catalog.store(store)
        store_id = catalog.store_id
        channel_name = self._config.channels[channel]
        stops = self._plan.traffic_stops(store, channel)
        sku_ids = catalog.sku_ids
        categories = catalog.categories

        start_bound = sink.start_ms

        def keep(ts: int) -> bool:
            """In the scenario, and not swallowed by a traffic stop."""
            if ts >= end_ms or ts < start_bound:
                return False
            return not stops or all(
                not (start <= ts < end and rnd() >= factor) for start, end, factor in stops
            )

        user = f"u{rng.randrange(self._config.users)}"
        session_id = next_id("s")
        count = _geometric(rnd, funnel.impressions_per_session)
        ranks = self._pick(catalog.cum_weights, count, focus)
        source = "live" if channel_name == "live" else _SOURCES[int(rnd() * len(_SOURCES))]
        p_click = funnel.click
        p_cart = funnel.cart
        p_remove = funnel.cart_remove
        cart: dict[int, int] = {}
        last_cart = 0.0
        t = float(start_ms)  # the browsing clock: one impression every ~2 s
        for rank in ranks:
            t += 500.0 + expo(1 / 1500.0)
            ts = place(t)
            if not keep(ts):
                continue
            sku = sku_ids[rank]
            add(
                ts,
                CLICKS,
                {
                    "event_id": next_id(),
                    "type": "impression",
                    "ts": ts_value(ts),
                    "store_id": store_id,
                    "channel": channel_name,
                    "user_id": user,
                    "session_id": session_id,
                    "sku": sku,
                    "category": categories[rank],
                    "source": source,
                },
            )
            if rnd() >= p_click:
                continue
            # each step follows the previous one by ~0.5 s: far shorter than a window, so a
            # traffic step (the rush) leaves the windows' step conversions steady
            t += 100.0 + expo(1 / 400.0)
            ts = place(t)
            if not keep(ts):
                continue
            add(
                ts,
                CLICKS,
                {
                    "event_id": next_id(),
                    "type": "click",
                    "ts": ts_value(ts),
                    "store_id": store_id,
                    "channel": channel_name,
                    "user_id": user,
                    "session_id": session_id,
                    "sku": sku,
                    "category": categories[rank],
                    "source": source,
                },
            )
            if rnd() >= p_cart:
                continue
            t += 100.0 + expo(1 / 400.0)
            ts = place(t)
            qty = 1 if rnd() < 0.75 else 2 + int(rnd() * 2)
            if not keep(ts):
                continue
            event: dict[str, Any] = {
                "event_id": next_id(),
                "type": "cart_add",
                "ts": ts_value(ts),
                "store_id": store_id,
                "channel": channel_name,
                "user_id": user,
                "session_id": session_id,
                "sku": sku,
                "qty": qty,
            }
            if rnd() < 0.7:
                event["unit_price"] = money(self._price(store, rank, ts))
            add(ts, CARTS, event)
            if rnd() < p_remove:
                removed = place(t + 500.0 + expo(1 / 2000.0))
                if keep(removed):
                    add(
                        removed,
                        CARTS,
                        {
                            "event_id": next_id(),
                            "type": "cart_remove",
                            "ts": ts_value(removed),
                            "store_id": store_id,
                            "channel": channel_name,
                            "user_id": user,
                            "session_id": session_id,
                            "sku": sku,
                            "qty": qty,
                        },
                    )
            else:
                cart[rank] = cart.get(rank, 0) + qty
                last_cart = t
        if not cart:
            return
        # checkout ~0.5 s after the last cart_add (browsing may go on meanwhile)
        t = last_cart + 100.0 + expo(1 / 400.0)
        p_order = funnel.order * self._plan.checkout_factor(store, channel, int(t))
        if rnd() < p_order:
            self._order(store, channel, catalog.cum_weights, user, session_id, cart, t, keep)

    def _pick(self, cum_weights: tuple[float, ...], count: int, focus: Focus | None) -> list[int]:
        rng = self._rng
        ranks = rng.choices(range(len(cum_weights)), cum_weights=cum_weights, k=count)
        if focus is not None:
            for index in range(count):
                if rng.random() < focus.share:
                    ranks[index] = rng.choice(focus.ranks)
        return ranks

    # --- an order and its consequences ----------------------------------------------------
    def _order(
        self,
        store: int,
        channel: int,
        cum_weights: tuple[float, ...],
        user: str,
        session_id: str,
        cart: dict[int, int],
        t: float,
        keep: Any,
    ) -> None:
        rng = self._rng
        rnd = rng.random
        expo = rng.expovariate
        sink = self._sink
        funnel = self._funnel
        ledger = self._ledger
        catalog = self._catalog.store(store)
        store_id = catalog.store_id
        channel_name = self._config.channels[channel]
        created_ts = sink.place(t)

        items = dict(list(cart.items())[:5])  # 1-5 lines
        extra = _pick_index(rnd, funnel.extra_lines)
        for rank in rng.choices(range(len(cum_weights)), cum_weights=cum_weights, k=extra):
            if len(items) < 5 and rank not in items:
                items[rank] = 1 if rnd() < 0.8 else 2
        lines = []
        total = Decimal(0)
        prices: dict[int, Money] = {}
        for rank, qty in items.items():
            price = prices[rank] = self._price(store, rank, created_ts)
            total += price[0] * qty
            lines.append(
                {"sku": catalog.sku_ids[rank], "qty": qty, "unit_price": sink.money(price)}
            )
        amount = as_money(total - _discount(total, rnd))
        amount_value = sink.money(amount)
        order_id = sink.next_id("o")

        def order_event(kind: str, ts: int, **extra_fields: Any) -> dict[str, Any]:
            event: dict[str, Any] = {
                "event_id": sink.next_id(),
                "type": kind,
                "ts": sink.ts_value(ts),
                "store_id": store_id,
                "channel": channel_name,
                "user_id": user,
                "session_id": session_id,
                "order_id": order_id,
                "lines": lines,
                "amount": amount_value,
            }
            if rnd() < 0.9:
                event["currency"] = "CNY"
            event.update(extra_fields)
            return event

        if not keep(created_ts):
            return
        created = order_event("order_created", created_ts)
        sink.add(created_ts, ORDERS, created)
        retried_ts = self._retry(created_ts, created, keep)
        # the order holds its stock once, at its earliest order_created
        hold_ts = created_ts if retried_ts is None else min(created_ts, retried_ts)
        for rank, qty in items.items():
            ledger.add(store, rank, hold_ts, -qty, HOLD)

        # payment: attempts with retries, or abandoned
        paid_ts = None
        t = float(created_ts)
        last_ts = created_ts
        if rnd() < funnel.attempt * self._plan.pay_factor(store, channel, created_ts):
            t += 100.0 + expo(1 / 400.0)
            for attempt in range(1, funnel.max_attempts + 1):
                ts = sink.place(t)
                fail = self._plan.payment_fail_probability(store, channel, ts, funnel.payment_fail)
                if rnd() >= fail:
                    paid_ts = ts  # paid, even if a traffic stop swallows the event
                    if keep(ts):
                        paid = order_event("order_paid", ts, **self._store_flag(user, order_id))
                        sink.add(ts, ORDERS, paid)
                        self._retry(ts, paid, keep)
                        self._paid_users.add(user)
                    break
                if keep(ts):
                    reason = _FAIL_REASONS[int(rnd() * len(_FAIL_REASONS))]
                    sink.add(ts, ORDERS, order_event("payment_failed", ts, reason=reason))
                last_ts = ts
                if attempt == funnel.max_attempts or rnd() >= funnel.retry:
                    break
                t += 300.0 + expo(1 / 700.0)

        if paid_ts is None:
            if rnd() < funnel.cancel_unpaid:
                ts = sink.place(last_ts + 60_000.0 + expo(1 / 60_000.0))
                raises_ok = all(ledger.may_raise(store, rank, ts) for rank in items)
                if raises_ok and keep(ts):
                    sink.add(ts, ORDERS, order_event("order_cancelled", ts))
                    for rank, qty in items.items():
                        ledger.add(store, rank, ts, qty, RELEASE)
            return
        self._aftersales(store, channel, user, order_id, items, prices, amount, paid_ts, keep)

    def _store_flag(self, user: str, order_id: str) -> dict[str, bool]:
        """The store's own `first_purchase` on some orders (drawn from the order id, so the
        scenario's other random draws stay as they were): users whose number ends in 0 or
        5 bought before the sale; the others are new unless they paid earlier in it."""
        share = zlib.crc32(order_id.encode()) % 1000 / 1000
        if share >= self._config.first_purchase_flag_rate:
            return {}
        number = int(user[1:])
        return {"first_purchase": number % 5 != 0 and user not in self._paid_users}

    def _retry(self, ts: int, event: dict[str, Any], keep: Any) -> int | None:
        """Maybe a client retry of `event`, sent after it with a new event_id: its ts about
        2 s later, or (half the time, when the grace leaves room) up to grace/2 earlier and
        delivered just after `event`. Either may fall in another window. Returns its ts."""
        rate = self._config.order_retry_rate
        rnd = self._rng.random
        if not rate or rnd() >= rate:
            return None
        sink = self._sink
        offset = int(100 + self._rng.expovariate(1 / 2000.0))
        slack = (self._config.grace_ms - 1) // 2  # what delivery may lag behind ts
        earlier = rnd() < 0.5 and offset < slack
        retried = sink.place(ts - offset if earlier else ts + offset)
        if not keep(retried):
            return None
        retry = {**event, "event_id": sink.next_id(), "ts": sink.ts_value(retried)}
        sink.add(retried, ORDERS, retry, held_ms=ts + 1 - retried if earlier else 0)
        return retried

    def _aftersales(
        self,
        store: int,
        channel: int,
        user: str,
        order_id: str,
        items: dict[int, int],
        prices: dict[int, Money],
        amount: Money,
        paid_ts: int,
        keep: Any,
    ) -> None:
        rng = self._rng
        rnd = rng.random
        expo = rng.expovariate
        sink = self._sink
        funnel = self._funnel
        catalog = self._catalog.store(store)
        channel_name = self._config.channels[channel]

        def after_event(kind: str, ts: int, **fields: Any) -> dict[str, Any]:
            return {
                "event_id": sink.next_id(),
                "type": kind,
                "ts": sink.ts_value(ts),
                "store_id": catalog.store_id,
                "channel": channel_name,
                "user_id": user,
                "order_id": order_id,
                **fields,
            }

        refund_p = funnel.refund * self._plan.refund_factor(store, paid_ts)
        if rnd() < refund_p:
            ts = sink.place(paid_ts + 100.0 + expo(1 / 400.0))
            fields: dict[str, Any] = {"reason": rng.choice(_REFUND_REASONS)}
            line_rank = None
            if rnd() < funnel.refund_line:
                line_rank = list(items)[int(rnd() * len(items))]
                qty = items[line_rank]
                refund = as_money(min(prices[line_rank][0] * qty, amount[0]))
                fields.update(sku=catalog.sku_ids[line_rank], qty=qty)
            else:
                refund = amount
            if keep(ts):
                sink.add(
                    ts,
                    AFTERSALES,
                    after_event("refund_requested", ts, amount=sink.money(refund), **fields),
                )
                if rnd() < funnel.refund_complete:
                    done = sink.place(ts + 10_000.0 + expo(1 / 60_000.0))
                    if keep(done):
                        sink.add(
                            done,
                            AFTERSALES,
                            after_event("refund_completed", done, amount=sink.money(refund)),
                        )
                if line_rank is not None and rnd() < funnel.return_goods:
                    back = sink.place(ts + 30_000.0 + expo(1 / 90_000.0))
                    restock = rnd() < funnel.return_restock and self._ledger.may_raise(
                        store, line_rank, back
                    )
                    if keep(back):
                        qty = items[line_rank]
                        sink.add(
                            back,
                            AFTERSALES,
                            after_event(
                                "return_received",
                                back,
                                sku=catalog.sku_ids[line_rank],
                                qty=qty,
                                restock=restock,
                            ),
                        )
                        if restock:
                            self._ledger.add(store, line_rank, back, qty, RETURN)
        if rnd() < funnel.complaint * self._plan.complaint_factor(store, paid_ts):
            ts = sink.place(paid_ts + 5000.0 + expo(1 / 30_000.0))
            if keep(ts):
                reason = _COMPLAINT_REASONS[int(rnd() * len(_COMPLAINT_REASONS))]
                complaint = after_event("complaint", ts, reason=reason)
                if rnd() < 0.2:  # about the shop rather than one order
                    del complaint["order_id"]
                sink.add(ts, AFTERSALES, complaint)


def _geometric(rnd: Any, mean: float) -> int:
    """1, 2, 3, ... with the given mean."""
    if mean <= 1:
        return 1
    u = rnd()
    return 1 + int(math.log(1.0 - u) / math.log(1.0 - 1.0 / mean))


def _pick_index(rnd: Any, probabilities: tuple[float, ...]) -> int:
    u = rnd()
    for index, p in enumerate(probabilities):
        u -= p
        if u < 0:
            return index
    return len(probabilities) - 1


def _discount(total: Decimal, rnd: Any) -> Decimal:
    """Every full 300 takes 50 off; smaller baskets get a 5-10% coupon. Always > 0."""
    if total >= _THRESHOLD:
        return (total // _THRESHOLD) * _OFF
    rate = _COUPONS[int(rnd() * len(_COUPONS))]
    return max(_CENT, (total * rate).quantize(_CENT, ROUND_HALF_UP))
