"""Shared fixtures: the local stack (started if missing), fresh names, worker processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import SecureKafka, Stack, ensure_secure_kafka, ensure_stack
from tests.support.worker import WorkerFactory


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The running local stack (Kafka, Prometheus, Alertmanager); started if missing."""
    return ensure_stack()


@pytest.fixture(scope="session")
def secure_kafka() -> SecureKafka:
    """The stack's SASL_SSL broker with mutual TLS; started if missing."""
    return ensure_secure_kafka()


@pytest.fixture
def workers(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerFactory]:
    """Starts salewatch workers on fresh topic names; stops them after the test."""
    factory = WorkerFactory(stack, tmp_path_factory.mktemp("workers"))
    yield factory
    factory.stop_all()
