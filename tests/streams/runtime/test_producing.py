"""Faust's Kafka producer is idempotent once `producing.install()` ran (it is not by itself)."""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers.aiokafka import Producer

from streams.runtime import producing


def kafka_producer_of_a_new_app() -> Any:
    app = faust.App("test-producing", broker="kafka://127.0.0.1:1", store="memory://")
    return app.producer._new_producer()  # the aiokafka producer Faust would start


async def test_faust_alone_makes_a_producer_that_may_write_a_retried_send_twice() -> None:
    assert producing._faust_settings_extra is not producing._idempotent
    installed = Producer._settings_extra
    Producer._settings_extra = producing._faust_settings_extra  # type: ignore[method-assign]
    try:
        assert kafka_producer_of_a_new_app()._txn_manager is None
    finally:
        Producer._settings_extra = installed  # type: ignore[method-assign]


async def test_installed_the_producer_is_idempotent_and_waits_for_all_replicas() -> None:
    producing.install()
    aio = kafka_producer_of_a_new_app()
    assert aio._txn_manager is not None  # producer id and sequence numbers
    assert aio._sender._acks == -1
