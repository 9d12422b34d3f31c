"""`salewatch emit`: send events from a JSON-lines file or stdin through the store SDK.

Each non-blank line is one event object. Its input topic follows from its `type` unless
`--topic` names one for every line. Invalid lines are reported and not sent; the summary
goes to stderr and the exit status is 1 when any line was refused or not delivered.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

import orjson

from sdk.client import StoreClient
from sdk.errors import DeliveryError, InvalidEventError
from sdk.privacy import Pseudonymiser
from streams.contract.decoding import RejectReason
from streams.contract.errors import ConfigError, SalewatchError
from streams.contract.events import TopicKind
from streams.contract.kafka_security import KafkaSecurity

__all__ = ["add_arguments", "run"]

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0] if __doc__ else None
    parser.add_argument(
        "file", nargs="?", default="-", help="JSON-lines file of events (default or '-': stdin)"
    )
    parser.add_argument(
        "--topic",
        choices=[kind.value for kind in TopicKind],
        help="send every event to this input topic (default: the topic of each event's type)",
    )
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("SALEWATCH_KAFKA_BOOTSTRAP") or "127.0.0.1:19092",
        help="Kafka bootstrap servers (default: $SALEWATCH_KAFKA_BOOTSTRAP or 127.0.0.1:19092)",
    )
    parser.add_argument(
        "--topic-prefix",
        default=os.environ.get("SALEWATCH_TOPIC_PREFIX", "shop."),
        help="input topic prefix (default: $SALEWATCH_TOPIC_PREFIX or shop.)",
    )
    parser.add_argument(
        "--linger-ms", type=int, default=20, help="longest wait for a batch to fill (default 20)"
    )


@dataclass(frozen=True, slots=True)
class LineRejection:
    line: int
    reason: str
    detail: str


@dataclass(slots=True)
class EmitReport:
    read: int = 0
    rejected: list[LineRejection] = field(default_factory=list)


def emit_lines(client: StoreClient, lines: Iterable[bytes], topic: str | None) -> EmitReport:
    """Queue every valid line on the client; collect the refused ones with their reasons."""
    report = EmitReport()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        report.read += 1
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            report.rejected.append(LineRejection(number, RejectReason.INVALID_JSON, str(exc)))
            continue
        try:
            client.emit(event, topic=topic)
        except InvalidEventError as exc:
            report.rejected.append(LineRejection(number, exc.reason, exc.detail))
    return report


@contextmanager
def _open_input(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdin.buffer
        return
    with open(path, "rb") as file:
        yield file


def _check_bootstrap(bootstrap: str) -> None:
    for address in bootstrap.split(","):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or any(c.isspace() for c in host):
            raise ConfigError(
                f"--bootstrap / SALEWATCH_KAFKA_BOOTSTRAP: expected host:port[,host:port], "
                f"got {bootstrap!r}"
            )


def run(args: argparse.Namespace) -> int:
    undelivered: DeliveryError | None = None
    try:
        _check_bootstrap(args.bootstrap)
        with _open_input(args.file) as lines:
            client = StoreClient(
                args.bootstrap,
                args.topic_prefix,
                linger_ms=args.linger_ms,
                security=KafkaSecurity.from_env(os.environ),
                pseudonymiser=Pseudonymiser.from_env(os.environ),
            )
            try:
                with client:
                    report = emit_lines(client, lines, args.topic)
            except DeliveryError as exc:
                undelivered = exc
    except (OSError, SalewatchError) as exc:  # unreadable file, configuration, no broker
        print(f"salewatch emit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stats = client.stats
    print(
        f"salewatch emit: read {report.read} events, sent {stats.events_sent} in "
        f"{stats.messages_sent} messages to {args.bootstrap} "
        f"({args.topic_prefix}*), rejected {len(report.rejected)}",
        file=sys.stderr,
    )
    for rejection in report.rejected:
        print(f"  line {rejection.line}: {rejection.reason}: {rejection.detail}", file=sys.stderr)
    if undelivered is not None:
        print(f"salewatch emit: {undelivered}", file=sys.stderr)
    return EXIT_OK if not report.rejected and undelivered is None else EXIT_REJECTED
