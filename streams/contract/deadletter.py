"""Dead-letter records (docs/contract.md §4): what was rejected, why, and where it came from."""

from __future__ import annotations

from dataclasses import dataclass

from streams.contract.decoding import Rejection

__all__ = ["MAX_DEADLETTER_BYTES", "DeadLetter", "dead_letter"]

MAX_DETAIL_CHARS = 2_000
# Key, value and headers of one dead letter together. The broker refuses a record batch over
# message.max.bytes (default 1 MiB); the margin covers record and batch framing.
MAX_DEADLETTER_BYTES = 900 * 1024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]

    @property
    def size(self) -> int:
        """Bytes of key, value and headers (header names are ASCII)."""
        headers = sum(len(name) + len(value) for name, value in self.headers)
        return len(self.key or b"") + len(self.value) + headers


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
    return _fitted(DeadLetter(key, rejection.value, headers))


def _fitted(letter: DeadLetter) -> DeadLetter:
    """`letter`, cut to MAX_DEADLETTER_BYTES when larger: a dead letter Kafka refuses would
    hold up every input offset behind it. The value is cut first, the key only when it alone
    is too large; the whole original stays at its topic, partition and offset."""
    if letter.size <= MAX_DEADLETTER_BYTES:
        return letter
    headers = [
        *letter.headers,
        ("salewatch.truncated", b"true"),
        ("salewatch.original.size", str(len(letter.value)).encode()),
    ]
    room = MAX_DEADLETTER_BYTES - DeadLetter(None, b"", headers).size
    key = None if letter.key is None else letter.key[:room]
    return DeadLetter(key, letter.value[: room - len(key or b"")], headers)
