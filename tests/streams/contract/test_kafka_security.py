"""KafkaSecurity: one definition of how clients connect, refused at start when incomplete."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from streams.contract.errors import ConfigError
from streams.contract.kafka_security import KafkaSecurity
from streams.runtime.settings import load_settings


def test_plaintext_by_default_adds_nothing_but_the_protocol() -> None:
    assert KafkaSecurity().client_options() == {"security_protocol": "PLAINTEXT"}
    assert KafkaSecurity.from_env({}) == KafkaSecurity()


def test_sasl_ssl_options_are_what_both_client_libraries_take() -> None:
    security = KafkaSecurity.from_env(
        {
            "SALEWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "SALEWATCH_KAFKA_SASL_USERNAME": "store-7",
            "SALEWATCH_KAFKA_SASL_PASSWORD": "s3cret-value",
            "SALEWATCH_KAFKA_SSL_CAFILE": "",  # empty: the system's CAs
        }
    )
    options = security.client_options()
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "store-7",
        "s3cret-value",
    )
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert "s3cret-value" not in repr(security)


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"security_protocol": "SASL_PLAINTEXT"}, "SALEWATCH_KAFKA_SECURITY_PROTOCOL"),
        ({"security_protocol": "SASL_SSL", "sasl_username": "u"}, "SALEWATCH_KAFKA_SASL_PASSWORD"),
        ({"sasl_mechanism": "SCRAM-SHA-1"}, "SALEWATCH_KAFKA_SASL_MECHANISM"),
        ({"security_protocol": "SSL", "ssl_certfile": "c.pem"}, "SALEWATCH_KAFKA_SSL_KEYFILE"),
        (
            {"security_protocol": "SSL", "ssl_cafile": "/nonexistent.pem"},
            "SALEWATCH_KAFKA_SSL_CAFILE",
        ),
    ],
)
def test_an_incomplete_setting_is_named(given: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        KafkaSecurity(**given)  # type: ignore[arg-type]


def test_a_key_that_does_not_match_its_certificate_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="SALEWATCH_KAFKA_SSL_CERTFILE"):
        KafkaSecurity(
            security_protocol="SSL",
            ssl_certfile=str(tmp_path / "cert.pem"),
            ssl_keyfile=str(tmp_path / "cert.pem"),
        )


def test_worker_settings_name_the_variable_and_keep_the_password_out_of_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SALEWATCH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SALEWATCH_KAFKA_SASL_PASSWORD", "hunter2-hunter2")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "SALEWATCH_KAFKA_SASL_USERNAME: required with SASL_SSL" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    monkeypatch.setenv("SALEWATCH_KAFKA_SASL_USERNAME", "salewatch")
    settings = load_settings()
    assert settings.kafka_security.sasl_password == "hunter2-hunter2"
    assert "hunter2" not in repr(settings)
