"""Settings from the environment (`SALEWATCH_*`), validated at start.

A bad value stops the worker with a message that names the environment variable, never a
traceback from deep inside Faust.
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Annotated, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.contract.errors import ConfigError
from streams.contract.events import TopicKind
from streams.contract.kafka_security import KafkaSecurity, SaslMechanism, SecurityProtocol
from streams.runtime.web_security import HttpAuth, server_ssl_context

__all__ = ["ENV_PREFIX", "Settings", "load_settings"]

ENV_PREFIX = "SALEWATCH_"
PositiveMs = Annotated[int, Field(gt=0)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # Kafka and Faust
    kafka_bootstrap: str = Field("127.0.0.1:19092", pattern=r"^[^\s,]+:\d+(,[^\s,]+:\d+)*$")
    app_id: str = Field("salewatch", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    topic_prefix: str = Field("shop.", pattern=r"^[A-Za-z0-9_.-]{0,100}$")
    output_prefix: str = Field("salewatch.", pattern=r"^[A-Za-z0-9_.-]{0,100}$")
    partitions: int = Field(4, ge=1, le=1024, description="partitions of internal topics")
    # how the worker and stage 1 connect (streams/contract/kafka_security.py; the SDK and
    # `salewatch emit` read the same variables)
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    store: str = Field("memory://", pattern=r"^(memory|rocksdb|aerospike)://")
    data_dir: str = "/tmp/salewatch"
    # takeover after a worker dies: other workers keep this many standby copies of each
    # table partition up to date, and the group notices a dead member after the session
    # timeout (heartbeats every third of it); too short, and a busy worker is taken for dead
    table_standby_replicas: int = Field(1, ge=0, le=10)
    # Faust's 60 s: 10 s made needless rebalances on a loaded machine, and windows went
    # missing in the rebalance tests (docs/architecture.md)
    session_timeout_ms: int = Field(60_000, ge=6_000, le=300_000)  # broker's min: 6 s
    # static membership (Kafka's group.instance.id) for the worker's and its stage 1's
    # consumer groups: a worker started again under the same id takes its partitions back
    # at once, not after the session timeout. One id per worker slot (a StatefulSet pod's
    # name), never shared by two running workers; a static member that stops does not leave
    # its groups, its partitions wait for it up to the session timeout. Unset: dynamic.
    group_instance_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,200}$")

    # the worker's web server: /metrics, /health, /api, /ingest
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=1, le=65535)
    # credentials for /metrics and /api/* (streams/runtime/web_security.py): a bearer token,
    # a user and password (HTTP basic), or both; required to listen beyond loopback
    web_auth_token: SecretStr | None = Field(None, min_length=16)
    web_auth_user: str | None = None
    web_auth_password: SecretStr | None = Field(None, min_length=12)
    # HTTPS on the web port: PEM certificate (chain) and key
    web_tls_certfile: str | None = None
    web_tls_keyfile: str | None = None
    # Faust's own /table/ (stored state) and /router/ views
    web_debug_views: bool = False

    # HTTP ingest (POST /ingest/<topic>): bearer token (unset = ingest disabled), body limit
    ingest_token: SecretStr | None = Field(None, min_length=16)
    ingest_max_bytes: int = Field(1024 * 1024, ge=1024, le=1024 * 1024)  # contract: 1 MiB
    # a body not read in full within this long is answered 408 and its connection closed
    ingest_read_timeout_s: float = Field(10.0, gt=0, le=300)

    # event time
    window_ms: PositiveMs = 60_000
    grace_ms: Annotated[int, Field(ge=0)] = 30_000
    idle_ms: PositiveMs = Field(
        10_000, description="an input read to its end and quiet this long holds no window open"
    )
    dedup_horizon_ms: PositiveMs = 15 * 60_000
    # inventory: how late (event time) a stock snapshot may arrive and still apply exactly
    snapshot_horizon_ms: PositiveMs = 6 * 60 * 60_000
    max_future_ms: PositiveMs = 5 * 60_000
    recent_windows: int = Field(60, ge=1, le=10_000, description="closed windows kept for the API")

    # inventory: "running low" = out of stock within this many minutes at the recent sales
    # rate, an exponentially weighted rate of held units with this half-life (event time)
    low_stock_minutes: float = Field(30.0, gt=0, le=7 * 24 * 60)
    velocity_half_life_ms: PositiveMs = 5 * 60_000
    # slow-moving (滞销): stock on hand and no sale for this long (event time), or the stock
    # would last longer than this many hours at the recent sales rate
    slow_moving_minutes: float = Field(60.0, gt=0, le=7 * 24 * 60)
    slow_cover_hours: float = Field(7 * 24.0, gt=0)

    # business alerts (alerts/, docs/alerts.md): Alertmanager (unset: log, topic, API and
    # metrics only), re-send interval of firing alerts, campaign calendar and thresholds
    # file, Grafana base URL for the alerts' generatorURL
    alertmanager_url: str | None = Field(None, pattern=r"^https?://\S+$")
    alert_resend_s: float = Field(60.0, gt=0, le=3600)
    campaign_file: str | None = None
    grafana_url: str = Field("http://localhost:3000", pattern=r"^https?://\S+$")

    # the hot path: messages taken per batch and the longest wait for a batch to fill
    batch_max_messages: int = Field(2_000, ge=1, le=100_000)
    batch_within_ms: PositiveMs = 50

    # bounded metric labels: values past the cap are reported as `other`
    max_store_labels: int = Field(500, ge=1)
    max_channel_labels: int = Field(32, ge=1)
    max_source_labels: int = Field(16, ge=1)
    max_category_labels: int = Field(100, ge=1)

    # operations KPIs: a paid order is a first purchase when its user paid at the store no
    # more recently than this (unless the event's `first_purchase` says otherwise)
    buyer_lookback_ms: PositiveMs = 365 * 24 * 60 * 60_000

    @field_validator(
        "alertmanager_url",
        "campaign_file",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        "ingest_token",
        "web_auth_token",
        "web_auth_user",
        "web_auth_password",
        "web_tls_certfile",
        "web_tls_keyfile",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _window_fits_grace(self) -> Self:
        if self.grace_ms > self.dedup_horizon_ms:
            raise ValueError(
                "SALEWATCH_GRACE_MS must not exceed SALEWATCH_DEDUP_HORIZON_MS "
                "(a duplicate could otherwise reach a still-open window)"
            )
        if self.snapshot_horizon_ms < self.dedup_horizon_ms:
            raise ValueError(
                "SALEWATCH_SNAPSHOT_HORIZON_MS must not be less than SALEWATCH_DEDUP_HORIZON_MS "
                "(inventory keeps changes with their ids for the dedup horizon, without them "
                "for the snapshot horizon)"
            )
        self._check_web()
        try:
            self.kafka_security  # noqa: B018 (validates the combination and loads the files)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def _check_web(self) -> None:
        if (self.web_auth_user is None) != (self.web_auth_password is None):
            raise ValueError("SALEWATCH_WEB_AUTH_USER and SALEWATCH_WEB_AUTH_PASSWORD: set both")
        if (self.web_tls_certfile is None) != (self.web_tls_keyfile is None):
            raise ValueError("SALEWATCH_WEB_TLS_CERTFILE and SALEWATCH_WEB_TLS_KEYFILE: set both")
        if self.web_tls_certfile is not None and self.web_tls_keyfile is not None:
            try:
                server_ssl_context(self.web_tls_certfile, self.web_tls_keyfile)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(
                    f"SALEWATCH_WEB_TLS_CERTFILE / SALEWATCH_WEB_TLS_KEYFILE: cannot load "
                    f"{self.web_tls_certfile!r} with {self.web_tls_keyfile!r}: {exc}"
                ) from None
        if not self.http_auth.enabled and not _is_loopback(self.web_host):
            raise ValueError(
                f"SALEWATCH_WEB_HOST={self.web_host} serves /metrics and /api/* beyond this "
                "machine: set SALEWATCH_WEB_AUTH_TOKEN or SALEWATCH_WEB_AUTH_USER and "
                "SALEWATCH_WEB_AUTH_PASSWORD"
            )

    @property
    def http_auth(self) -> HttpAuth:
        token, password = self.web_auth_token, self.web_auth_password
        return HttpAuth(
            token=None if token is None else token.get_secret_value(),
            user=self.web_auth_user,
            password=None if password is None else password.get_secret_value(),
        )

    @property
    def web_ssl_context(self) -> ssl.SSLContext | None:
        if self.web_tls_certfile is None or self.web_tls_keyfile is None:
            return None
        return server_ssl_context(self.web_tls_certfile, self.web_tls_keyfile)

    @property
    def kafka_security(self) -> KafkaSecurity:
        password = self.kafka_sasl_password
        return KafkaSecurity(
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=None if password is None else password.get_secret_value(),
            ssl_cafile=self.kafka_ssl_cafile,
            ssl_certfile=self.kafka_ssl_certfile,
            ssl_keyfile=self.kafka_ssl_keyfile,
        )

    @property
    def ingest_group_instance_id(self) -> str | None:
        """Stage 1's static member id in its own group: the worker's, marked."""
        return None if self.group_instance_id is None else f"{self.group_instance_id}-ingest"

    @property
    def broker_url(self) -> str:
        return ",".join(f"kafka://{host}" for host in self.kafka_bootstrap.split(","))

    def input_topic(self, kind: TopicKind) -> str:
        return f"{self.topic_prefix}{kind.value}"

    def output_topic(self, name: str) -> str:
        return f"{self.output_prefix}{name}"


# settings whose values an error message must not show, not even a bad one
_SECRETS = frozenset(
    name for name, info in Settings.model_fields.items() if "SecretStr" in str(info.annotation)
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise ConfigError naming each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            name = ENV_PREFIX + "_".join(str(part) for part in err["loc"]).upper()
            if not err["loc"]:
                problems.append(err["msg"].removeprefix("Value error, "))
            elif err["loc"][0] in _SECRETS:
                problems.append(f"{name}: {err['msg']}")
            else:
                problems.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
