"""Messages cut to what Kafka takes, and a refused send logged and counted."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from prometheus_client import CollectorRegistry, Counter

from streams.runtime.delivery import MAX_MESSAGE_BYTES, fitting_chunks, watch_delivery


def test_items_are_cut_until_every_part_fits_one_message_in_order() -> None:
    items = [{"n": n, "pad": "x" * 1000} for n in range(3000)]
    parts = list(fitting_chunks(items, orjson.dumps))
    assert len(parts) > 1
    assert all(len(payload) <= MAX_MESSAGE_BYTES for _, payload in parts)
    assert all(orjson.loads(payload) == part for part, payload in parts)
    assert [item for part, _ in parts for item in part] == items


def test_items_that_fit_are_one_message() -> None:
    ((part, payload),) = fitting_chunks([1, 2, 3], orjson.dumps)
    assert part == [1, 2, 3] and payload == b"[1,2,3]"


async def test_a_refused_delivery_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    errors = Counter("refused", "refused sends", ["topic"], registry=CollectorRegistry())
    refused, delivered = asyncio.Future[None](), asyncio.Future[None]()
    watch_delivery(refused, "t.partials", errors)
    watch_delivery(delivered, "t.partials", errors)
    refused.set_exception(RuntimeError("MessageSizeTooLargeError"))
    delivered.set_result(None)
    await asyncio.sleep(0)  # done callbacks run on the loop
    assert errors.labels("t.partials")._value.get() == 1
    assert "t.partials was refused by Kafka" in caplog.text
