"""How every salewatch Kafka client connects: plaintext, TLS (optionally mutual), or SASL
(PLAIN or SCRAM-SHA-512) over TLS.

One definition for the worker (Faust and stage 1 on aiokafka), the store SDK and
`salewatch emit` (kafka-python): both client libraries take the options `client_options()`
returns under the same names. Read from `SALEWATCH_KAFKA_<FIELD>` (the worker's settings,
`KafkaSecurity.from_env` for the command line); a bad combination or an unreadable file
fails at start naming the variable.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from streams.contract.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "SASL_MECHANISMS",
    "SECURITY_PROTOCOLS",
    "KafkaSecurity",
    "SaslMechanism",
    "SecurityProtocol",
]

ENV_PREFIX = "SALEWATCH_KAFKA_"
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-512"]
SECURITY_PROTOCOLS: tuple[str, ...] = get_args(SecurityProtocol)
SASL_MECHANISMS: tuple[str, ...] = get_args(SaslMechanism)


def _env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


@dataclass(frozen=True)
class KafkaSecurity:
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None  # PEM; unset: the system's trusted CAs
    ssl_certfile: str | None = None  # PEM client certificate (mutual TLS), with its key
    ssl_keyfile: str | None = None

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ConfigError("invalid Kafka security settings:\n  " + "\n  ".join(problems))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSecurity:
        """From `SALEWATCH_KAFKA_*` variables; unset and empty ones take the defaults."""
        given = {f.name: env.get(_env_name(f.name), "").strip() for f in fields(cls)}
        return cls(**{name: value for name, value in given.items() if value})  # type: ignore[arg-type]

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol != "PLAINTEXT"

    def ssl_context(self) -> ssl.SSLContext | None:
        """Verifies the broker's certificate and host name; presents ours when configured."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword options of aiokafka's and kafka-python's clients (the same names)."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.security_protocol == "SASL_SSL":
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options

    def _problems(self) -> list[str]:
        problems = []
        if self.security_protocol not in SECURITY_PROTOCOLS:
            problems.append(
                f"{_env_name('security_protocol')}: one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"got {self.security_protocol!r}"
            )
        if self.sasl_mechanism not in SASL_MECHANISMS:
            problems.append(
                f"{_env_name('sasl_mechanism')}: one of {', '.join(SASL_MECHANISMS)}, "
                f"got {self.sasl_mechanism!r}"
            )
        if self.security_protocol == "SASL_SSL":
            problems += [
                f"{_env_name(name)}: required with SASL_SSL"
                for name in ("sasl_username", "sasl_password")
                if not getattr(self, name)
            ]
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            problems.append(
                f"{_env_name('ssl_certfile')} and {_env_name('ssl_keyfile')}: set both or neither"
            )
        if problems or not self.uses_tls:
            return problems
        try:
            ssl.create_default_context(cafile=self.ssl_cafile)
        except (OSError, ssl.SSLError) as exc:
            problems.append(f"{_env_name('ssl_cafile')}: cannot load {self.ssl_cafile!r}: {exc}")
        if self.ssl_certfile:
            try:
                ssl.create_default_context().load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
            except (OSError, ssl.SSLError) as exc:
                problems.append(
                    f"{_env_name('ssl_certfile')} / {_env_name('ssl_keyfile')}: cannot load "
                    f"{self.ssl_certfile!r} with {self.ssl_keyfile!r}: {exc}"
                )
        return problems
