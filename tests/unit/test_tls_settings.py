"""TLS and Kafka security settings: incomplete settings are refused with a clear message, production refuses tokens
over plaintext servers, and the settings turn into the uvicorn options, gRPC credentials and aiokafka keyword
arguments the clients take. (The embedded broker speaks no TLS or SASL, so these are checked here, not on a wire.)"""

from __future__ import annotations

import os
import re
import secrets
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from modelyard.kafka.consumer import EventConsumer
from modelyard.kafka.producer import EventPublisher
from modelyard.kafka.security import KafkaSecurity
from modelyard.monitor.config import MonitorSettings
from modelyard.registry.config import RegistrySettings
from modelyard.settings import ServiceSettings
from modelyard.testing.tls import TlsMaterial
from modelyard.tls import ClientTls, TlsError, TlsSettings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MODELYARD_"):
            monkeypatch.delenv(name)


def production(**overrides: Any) -> ServiceSettings:
    token = secrets.token_urlsafe(32)
    values: dict[str, Any] = {
        "profile": "production",
        "host": "0.0.0.0",
        "auth": {"allow_anonymous": False, "tokens": {token: {"principal": "ci", "roles": ["viewer"]}}},
    }
    return ServiceSettings.model_validate(values | overrides)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"key_file": "k.pem"}, "tls.cert_file and tls.key_file go together"),
        ({"cert_file": "c.pem"}, "tls.cert_file and tls.key_file go together"),
        ({"client_ca_file": "ca.pem"}, "tls.client_ca_file (mutual TLS) needs the server's own tls.cert_file"),
        ({"ca_file": "ca.pem", "client_cert_file": "c.pem"}, "tls.client_cert_file and tls.client_key_file go"),
        ({"ca_file": "ca.pem", "client_key_file": "k.pem"}, "tls.client_cert_file and tls.client_key_file go"),
        ({"client_cert_file": "c.pem", "client_key_file": "k.pem"}, "tls.client_cert_file needs tls.ca_file"),
    ],
)
def test_incomplete_tls_settings_are_refused(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        TlsSettings.model_validate(values)


def test_production_refuses_tokens_over_plaintext_servers() -> None:
    with pytest.raises(ValidationError, match=re.escape("the servers have no TLS: set tls.cert_file and tls.key_file")):
        production()


def test_production_accepts_tls_or_an_explicit_proxy(tls_material: TlsMaterial) -> None:
    assert production(tls=tls_material.server_settings()).tls.serves_tls
    behind_proxy = production(tls={"terminated_by_proxy": True})
    assert not behind_proxy.tls.serves_tls
    assert behind_proxy.tls.grpc_server_credentials() is None
    assert behind_proxy.tls.uvicorn_options() == {}


def test_settings_read_from_nested_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tls_material: TlsMaterial
) -> None:
    pki = tls_material.pki
    for name, value in {
        "CERT_FILE": pki.server.cert_file,
        "KEY_FILE": pki.server.key_file,
        "CLIENT_CA_FILE": pki.ca_file,
        "CA_FILE": pki.ca_file,
        "CLIENT_CERT_FILE": pki.client.cert_file,
        "CLIENT_KEY_FILE": pki.client.key_file,
    }.items():
        monkeypatch.setenv(f"MODELYARD_REGISTRY_TLS__{name}", str(value))
    tls = RegistrySettings().tls
    assert tls.uvicorn_options() == {
        "ssl_certfile": str(pki.server.cert_file),
        "ssl_keyfile": str(pki.server.key_file),
        "ssl_ca_certs": str(pki.ca_file),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }
    assert tls.client == ClientTls(pki.ca_file, pki.client.cert_file, pki.client.key_file)
    assert tls.grpc_server_credentials() is not None


def test_server_tls_without_client_ca_does_not_ask_for_client_certificates(tls_material: TlsMaterial) -> None:
    options = TlsSettings.model_validate(tls_material.server_settings(mutual=False)).uvicorn_options()
    assert "ssl_cert_reqs" not in options
    assert "ssl_ca_certs" not in options


def test_a_missing_certificate_file_is_a_clear_error(tmp_path: Path, tls_material: TlsMaterial) -> None:
    tls = TlsSettings(cert_file=tmp_path / "absent.crt", key_file=tls_material.pki.server.key_file)
    with pytest.raises(TlsError, match=f"cannot read the server certificate {tmp_path / 'absent.crt'}"):
        tls.grpc_server_credentials()
    with pytest.raises(TlsError, match="cannot load the client TLS files"):
        ClientTls(tmp_path / "absent-ca.crt").ssl_context()


def test_client_ssl_context_verifies_the_server_and_presents_the_client_certificate(
    tls_material: TlsMaterial,
) -> None:
    context = tls_material.client.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [ca["subject"] for ca in context.get_ca_certs()] == [
        ((("organizationName", "modelyard"),), (("commonName", "modelyard local CA"),))
    ]


def test_plaintext_kafka_passes_only_the_protocol() -> None:
    assert KafkaSecurity().client_options() == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_scram_gives_aiokafka_a_verifying_context_and_the_credentials(tls_material: TlsMaterial) -> None:
    security = KafkaSecurity.model_validate(
        {
            "protocol": "SASL_SSL",
            "ca_file": tls_material.pki.ca_file,
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "monitor",
            "sasl_password": "s3cr3t-value",
        }
    )
    options = security.client_options()
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "monitor",
        "sasl_plain_password": "s3cr3t-value",
    }
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1
    assert "s3cr3t-value" not in repr(security)


def test_ssl_with_a_client_certificate_loads_it(tls_material: TlsMaterial, tmp_path: Path) -> None:
    pki = tls_material.pki
    security = KafkaSecurity(
        protocol="SSL", ca_file=pki.ca_file, cert_file=pki.client.cert_file, key_file=pki.client.key_file
    )
    assert isinstance(security.client_options()["ssl_context"], ssl.SSLContext)
    wrong_key = KafkaSecurity(
        protocol="SSL", cert_file=pki.client.cert_file, key_file=tls_material.stranger_client.key_file
    )
    with pytest.raises(TlsError, match="cannot load kafka_security's files"):
        wrong_key.client_options()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u"}, "needs sasl_password"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_password": "p"}, "needs sasl_mechanism, sasl_username"),
        ({"protocol": "SSL", "sasl_username": "u"}, "SASL settings have no effect with kafka_security.protocol=SSL"),
        ({"protocol": "PLAINTEXT", "ca_file": "ca.pem"}, "SSL files have no effect"),
        ({"protocol": "SSL", "cert_file": "c.pem"}, "cert_file and kafka_security.key_file go together"),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "u", "sasl_password": "p"}, "PLAIN"),
    ],
)
def test_inconsistent_kafka_security_is_refused(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSecurity.model_validate(values)


def test_production_refuses_sasl_plain_in_clear(tls_material: TlsMaterial) -> None:
    clear = {"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p"}
    with pytest.raises(ValidationError, match="SASL PLAIN without SSL sends the password in clear"):
        production(tls=tls_material.server_settings(), kafka_security=clear)


async def test_kafka_security_from_environment_reaches_every_aiokafka_client(
    monkeypatch: pytest.MonkeyPatch, tls_material: TlsMaterial
) -> None:
    for name, value in {
        "PROTOCOL": "SASL_SSL",
        "CA_FILE": str(tls_material.pki.ca_file),
        "SASL_MECHANISM": "SCRAM-SHA-256",
        "SASL_USERNAME": "monitor",
        "SASL_PASSWORD": "from-a-secret",
    }.items():
        monkeypatch.setenv(f"MODELYARD_MONITOR_KAFKA_SECURITY__{name}", value)
    settings = MonitorSettings()
    publisher = EventPublisher.from_settings(settings)
    consumer = EventConsumer.from_settings(settings, "group", ["topic"])
    admin = AIOKafkaAdminClient(bootstrap_servers="kafka:9093", **settings.kafka_security.client_options())
    dead_letters = consumer._dead_letters.publisher
    clients = [publisher._producer.client, consumer._consumer._client, dead_letters._producer.client]
    for client in [*clients, admin._client]:
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-256"
        assert client._sasl_plain_username == "monitor"
        assert client._sasl_plain_password == "from-a-secret"
        assert client._ssl_context.verify_mode == ssl.CERT_REQUIRED
