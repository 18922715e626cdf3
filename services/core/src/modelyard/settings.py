"""Settings shared by every service. Each service subclasses `ServiceSettings` with its own env prefix
(`MODELYARD_<NAME>_`); this module and the services' `config.py` are the only places that read the environment."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Profile = Literal["local", "production"]


class ServiceSettings(BaseSettings):
    """What every Modelyard service needs to run: addresses, broker, telemetry and lifecycle."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

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

    @model_validator(mode="after")
    def _safe_for_production(self) -> Self:
        if self.profile == "production" and self.host == "127.0.0.1":
            # A production pod bound to loopback would be unreachable yet report healthy to itself.
            raise ValueError("profile=production needs an explicit host (e.g. 0.0.0.0), not the local default")
        return self
