"""Keyed pseudonyms for `user_id` (docs/contract.md: pseudonymous by contract).

A store that holds real account ids gives the client a secret key; every event's `user_id`
then leaves the store as HMAC-SHA256(key, user_id), so salewatch counts unique users (the
same user gives the same pseudonym under one key) without ever seeing who they are. Without
the key the pseudonym cannot be reversed or recomputed; rotate the key and the users of
older windows no longer match the new ones (unique users per window are unaffected).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from streams.contract.errors import ConfigError

__all__ = ["KEY_ENV", "MIN_KEY_BYTES", "Pseudonymiser"]

KEY_ENV = "SALEWATCH_USER_ID_KEY"  # hex, for `salewatch emit`
MIN_KEY_BYTES = 16
PREFIX = "h1:"  # marks a pseudonym (and its scheme): HMAC-SHA256, hex, 128 bits


class Pseudonymiser:
    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"a user_id key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key=<{len(self._key)} bytes>)"

    def user_id(self, user_id: str) -> str:
        digest = hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()
        return PREFIX + digest[:32]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Pseudonymiser | None:
        """From SALEWATCH_USER_ID_KEY (hex); None when unset."""
        raw = env.get(KEY_ENV, "").strip()
        if not raw:
            return None
        try:
            key = bytes.fromhex(raw)
        except ValueError:
            raise ConfigError(
                f"{KEY_ENV}: hex digits expected (e.g. openssl rand -hex 32)"
            ) from None
        try:
            return cls(key)
        except ConfigError as exc:
            raise ConfigError(f"{KEY_ENV}: {exc}") from None
