"""Faust must not commit past a message that no agent took.

Around a rebalance, Faust's streams skip the messages fetched for the previous consumer
generation or while the flow is stopped (faust-streaming #221, #223), and acknowledge them
"so the lag does not grow". An acknowledged offset is committable: a partition that stays
with this worker then gets its committed offset moved past messages it never processed,
and the seek to the committed offset once the rebalance is over does not read them again.
Seen as the first nine windows of one stage-3 partition never emitted after a second
worker joined: their partials were in the topic, stage 3 never merged them, and the
partition's committed offset had passed them.

`install()` makes Faust's consumer take an acknowledgement only for a message a stream
took (Faust marks it `tracked` when it does); a skipped message is marked done without its
offset, so it is read again after the rebalance.
"""

from __future__ import annotations

from faust.transport.consumer import Consumer
from faust.types import Message

__all__ = ["install"]

_faust_ack = Consumer.ack


def _ack_taken_only(self: Consumer, message: Message) -> bool:
    if not message.tracked:  # skipped by the stream: fetched before the rebalance
        message.acked = True
        return False
    return _faust_ack(self, message)


def install() -> None:
    """Idempotent; before the app's consumer acknowledges anything."""
    Consumer.ack = _ack_taken_only  # type: ignore[method-assign]
