"""Each service's settings: its own env prefix, safe defaults, and the production guard."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from modelyard.governance.config import GovernanceSettings
from modelyard.monitor.config import MonitorSettings
from modelyard.registry.config import RegistrySettings
from modelyard.serving.config import ServingSettings
from modelyard.settings import ServiceSettings

pytestmark = pytest.mark.unit

DEFAULT_PORTS: dict[type[ServiceSettings], tuple[str, int, int]] = {
    RegistrySettings: ("registry", 50051, 8081),
    ServingSettings: ("serving", 8001, 8000),
    MonitorSettings: ("monitor", 50053, 8083),
    GovernanceSettings: ("governance", 50054, 8084),
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MODELYARD_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("settings_class", DEFAULT_PORTS)
def test_defaults_are_valid_and_local(settings_class: type[ServiceSettings]) -> None:
    settings = settings_class()
    name, grpc_port, http_port = DEFAULT_PORTS[settings_class]
    assert settings_class.service_name == name
    assert (settings.grpc_port, settings.http_port) == (grpc_port, http_port)
    assert settings.profile == "local"
    assert settings.host == "127.0.0.1"


def test_default_ports_do_not_collide() -> None:
    ports = [port for _, grpc_port, http_port in DEFAULT_PORTS.values() for port in (grpc_port, http_port)]
    assert len(set(ports)) == len(ports)


@pytest.mark.parametrize("settings_class", DEFAULT_PORTS)
def test_each_service_reads_only_its_own_prefix(
    settings_class: type[ServiceSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = settings_class.service_name.upper()
    monkeypatch.setenv(f"MODELYARD_{name}_GRPC_PORT", "61000")
    monkeypatch.setenv(f"MODELYARD_{name}_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    settings = settings_class()
    assert settings.grpc_port == 61000
    assert settings.kafka_bootstrap == "kafka-1:9092,kafka-2:9092"
    for other in DEFAULT_PORTS:
        if other is not settings_class:
            assert other().grpc_port == DEFAULT_PORTS[other][1]


def test_production_refuses_the_loopback_default() -> None:
    with pytest.raises(ValidationError, match="not loopback"):
        ServiceSettings(profile="production")


@pytest.mark.parametrize("settings_class", DEFAULT_PORTS)
def test_production_refuses_every_services_local_defaults(
    settings_class: type[ServiceSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loopback at least; services add their own production checks (tokens, signing keys, ...) on top.
    monkeypatch.setenv(f"MODELYARD_{settings_class.service_name.upper()}_PROFILE", "production")
    with pytest.raises(ValidationError):
        settings_class()


def test_out_of_range_port_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_SERVING_HTTP_PORT", "70000")
    with pytest.raises(ValidationError, match="http_port"):
        ServingSettings()


def test_stream_batches_stay_under_the_message_limit_and_hold_a_capped_record() -> None:
    with pytest.raises(ValidationError, match="stream_max_batch_bytes"):
        ServingSettings(stream_max_batch_bytes=2 << 20)  # over Kafka's default 1 MiB message limit
    with pytest.raises(ValidationError, match="at most half"):
        ServingSettings(stream_max_record_bytes=300_000, stream_max_batch_bytes=500_000)
    ServingSettings(stream_max_record_bytes=250_000, stream_max_batch_bytes=500_000)
