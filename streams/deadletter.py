"""Dead-letter records (CONTRACT.md §4): what was rejected, why, and where it came from."""

from __future__ import annotations

from dataclasses import dataclass

from streams.decoding import Rejection

__all__ = ["DeadLetter", "dead_letter"]

MAX_DETAIL_CHARS = 2_000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def dead_letter(
    rejection: Rejection, key: bytes | None, topic: str, partition: int, offset: int
) -> DeadLetter:
    headers = [
        ("salewatch.error.reason", rejection.reason.value.encode()),
        ("salewatch.error.detail", rejection.detail[:MAX_DETAIL_CHARS].encode()),
        ("salewatch.original.topic", topic.encode()),
        ("salewatch.original.partition", str(partition).encode()),
        ("salewatch.original.offset", str(offset).encode()),
    ]
    if rejection.index is not None:
        headers.append(("salewatch.batch.index", str(rejection.index).encode()))
    return DeadLetter(key, rejection.value, headers)
