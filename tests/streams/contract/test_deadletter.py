"""Dead letters fit the broker's record limit: oversized ones are cut and say so."""

from __future__ import annotations

from streams.contract.deadletter import MAX_DEADLETTER_BYTES, dead_letter
from streams.contract.decoding import MessageDecoder, Rejection, RejectReason
from streams.contract.events import TopicKind

BROKER_DEFAULT_MESSAGE_MAX_BYTES = 1_048_588
RECORD_FRAMING_BYTES = 64 * 1024  # batch header, record varints: far less than this


def test_a_small_dead_letter_is_kept_whole() -> None:
    rejection = Rejection(RejectReason.INVALID_JSON, "not json", b"{oops", None)
    letter = dead_letter(rejection, b"store-1", "shop.clicks", 2, 7)
    assert (letter.key, letter.value) == (b"store-1", b"{oops")
    assert "salewatch.truncated" not in dict(letter.headers)


def test_an_oversized_dead_letter_is_cut_to_fit_and_says_so() -> None:
    original = b"[" + b"x" * (1024 * 1024 - 1)  # 1 MiB, not JSON: rejected whole
    [rejection] = MessageDecoder(TopicKind.CLICKS).decode(original).rejections
    letter = dead_letter(rejection, b"store-1", "shop.clicks", 3, 42)

    assert letter.size <= MAX_DEADLETTER_BYTES
    assert MAX_DEADLETTER_BYTES + RECORD_FRAMING_BYTES <= BROKER_DEFAULT_MESSAGE_MAX_BYTES
    headers = dict(letter.headers)
    assert headers["salewatch.truncated"] == b"true"
    assert headers["salewatch.original.size"] == str(len(original)).encode()
    assert original.startswith(letter.value)
    assert len(letter.value) > MAX_DEADLETTER_BYTES - 16 * 1024  # cut only as far as needed
    assert letter.key == b"store-1"
    # the whole original stays addressable
    assert headers["salewatch.error.reason"] == b"invalid_json"
    assert headers["salewatch.original.topic"] == b"shop.clicks"
    assert headers["salewatch.original.partition"] == b"3"
    assert headers["salewatch.original.offset"] == b"42"


def test_a_key_too_large_on_its_own_is_cut_too() -> None:
    rejection = Rejection(RejectReason.INVALID_JSON, "not json", b"x" * 10, None)
    letter = dead_letter(rejection, b"k" * (2 * 1024 * 1024), "shop.clicks", 0, 1)
    assert letter.size <= MAX_DEADLETTER_BYTES
    assert letter.key is not None and len(letter.key) > MAX_DEADLETTER_BYTES - 16 * 1024
    assert letter.value == b""
    assert dict(letter.headers)["salewatch.truncated"] == b"true"
