"""Faust's consumer commits only what a stream took, not the messages it skipped."""

from __future__ import annotations

import faust
from faust.transport.consumer import Consumer
from faust.types import TP
from faust.types.tuples import Message

from streams.runtime import skipped_acks

TOPIC = "t.partials"


def message(offset: int, *, taken: bool) -> Message:
    msg = Message(TOPIC, 0, offset, 0.0, 0, None, None, b"{}", None)
    msg.tracked = taken  # Faust marks a message tracked when a stream takes it
    return msg


def consumer() -> Consumer:
    app = faust.App("test-skipped-acks", broker="kafka://127.0.0.1:1", store="memory://")
    app.topics._acking_topics.add(TOPIC)  # an agent's topic: its messages are acked
    return app.consumer


def test_a_message_the_stream_skipped_is_done_but_its_offset_not_committable() -> None:
    skipped_acks.install()
    kafka = consumer()
    skipped, taken = message(4, taken=False), message(5, taken=True)
    assert kafka.ack(skipped) is False and skipped.acked
    assert kafka.ack(taken) is True
    assert list(kafka._acked[TP(TOPIC, 0)]) == [5]  # 4 is read again after the rebalance


def test_without_it_faust_would_commit_past_the_skipped_message() -> None:
    kafka = consumer()
    faust_ack = skipped_acks._faust_ack
    faust_ack(kafka, message(4, taken=False))
    faust_ack(kafka, message(5, taken=True))
    assert kafka._new_offset(TP(TOPIC, 0)) == 6  # message 4 never processed, committed past
