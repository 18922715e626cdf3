"""Settings shared by every service. Each service subclasses `ServiceSettings` with its own env prefix
(`MODELYARD_<NAME>_`); this module and the services' `config.py` are the only places that read the environment."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelyard.auth import AuthSettings
from modelyard.kafka.security import KafkaSecurity
from modelyard.tls import TlsSettings

Profile = Literal["local", "production"]


class ServiceSettings(BaseSettings):
    """What every Modelyard service needs to run: addresses, broker, telemetry and lifecycle."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_nested_delimiter="__")

    service_name: ClassVar[str] = "modelyard"

    profile: Profile = Field("local", description="`production` refuses unsafe defaults")
    host: str = Field("127.0.0.1", description="address the gRPC and HTTP servers bind to")
    grpc_port: int = Field(0, ge=0, le=65535, description="gRPC port (health, reflection, the service API)")
    http_port: int = Field(0, ge=0, le=65535, description="HTTP port (/healthz, /readyz, /metrics, REST)")
    data_dir: Path = Field(Path(".modelyard"), description="local state: SQLite files, artifacts")
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated")
    kafka_idempotence: bool = Field(
        False, description="idempotent producer: turn on for real Kafka (the embedded broker rejects it)"
    )
    kafka_security: KafkaSecurity = Field(
        default_factory=KafkaSecurity, description="SSL and SASL of the service's Kafka clients"
    )
    kafka_topic_check_interval_s: float = Field(
        2.0,
        gt=0,
        description="seconds between checks that the topics a producer or consumer uses exist with their partitions "
        "(re-created when a broker lost them, e.g. the embedded broker after a restart)",
    )
    kafka_required: bool = Field(
        True, description="readiness waits for the broker; off only for a service started on its own"
    )
    otlp_endpoint: str | None = Field(None, description="OTLP gRPC endpoint for traces and metrics")
    log_level: str = Field("INFO", description="root log level")
    shutdown_grace_s: float = Field(10.0, gt=0, description="seconds to drain in-flight work on SIGTERM")
    max_body_bytes: int = Field(
        1 << 20,
        gt=0,
        description="largest HTTP request body, in bytes (413 beyond); uploads and inference have their own",
    )
    auth: AuthSettings = Field(
        default_factory=AuthSettings, description="bearer tokens (JSON), OIDC and anonymous access"
    )
    tls: TlsSettings = Field(
        default_factory=TlsSettings, description="TLS and mutual TLS of the servers, and of clients of other services"
    )

    @model_validator(mode="after")
    def _safe_for_production(self) -> Self:
        if self.profile != "production":
            return self
        if is_loopback(self.host):
            # A production pod bound to loopback would be unreachable yet report healthy to itself.
            raise ValueError(f"profile=production needs a reachable host (e.g. 0.0.0.0), not loopback {self.host!r}")
        problems = self.auth.production_problems() + self.kafka_security.production_problems()
        if not self.tls.serves_tls and not self.tls.terminated_by_proxy:
            # Bearer tokens would cross the network in clear text.
            problems.append(
                "the servers have no TLS: set tls.cert_file and tls.key_file, or tls.terminated_by_proxy=true "
                "when a proxy or mesh in front terminates TLS"
            )
        if problems:
            raise ValueError("profile=production refuses unsafe settings: " + "; ".join(problems))
        return self


def is_loopback(host: str) -> bool:
    """Every spelling of loopback: localhost (and *.localhost), 127.0.0.0/8 in any form inet_aton reads
    (127.1, 0x7f.0.0.1), ::1, and IPv4-mapped loopback (::ffff:127.0.0.1); brackets allowed."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return False  # a host name: resolved where it runs, not judged here
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
