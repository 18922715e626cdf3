"""Settings of the governance service: environment variables `MODELYARD_GOVERNANCE_*`."""

from pathlib import Path
from typing import ClassVar, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from modelyard.events.signing import PublicKeyHex
from modelyard.settings import ServiceSettings


class GovernanceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MODELYARD_GOVERNANCE_")
    service_name: ClassVar[str] = "governance"

    grpc_port: int = Field(default=50054, ge=0, le=65535)
    http_port: int = Field(default=8084, ge=0, le=65535)
    database_url: str = Field(
        "", description="SQLAlchemy URL (sqlite:///... or postgresql+psycopg://...); default: SQLite in data_dir"
    )
    policy_file: Path | None = Field(None, description="YAML policy; default: the bundled example policy")
    registry_address: str = Field("127.0.0.1:50051", description="registry gRPC address")
    registry_token: SecretStr | None = Field(None, description="bearer token governance uses with the registry")
    monitor_address: str = Field("127.0.0.1:50053", description="monitor gRPC address (prediction traces)")
    monitor_token: SecretStr | None = Field(
        None, description="bearer token governance uses with the monitor, if it requires one (role service suffices)"
    )
    audit_signing_key: SecretStr | None = Field(
        None, description="Ed25519 private key seed (64 hex chars) for audit checkpoints; local default: a key file"
    )
    event_signing_key: SecretStr | None = Field(
        None,
        description="Ed25519 private key seed (64 hex chars) that signs decisions; local default: "
        "<data_dir>/event-signing.key",
    )
    trusted_governance_keys: list[PublicKeyHex] = Field(
        default_factory=list,
        description="earlier public keys (hex, JSON list) of governance's own whose decisions the audit still accepts "
        "(key rotation); the current key is always trusted",
    )
    trusted_monitor_keys: list[PublicKeyHex] = Field(
        default_factory=list,
        description="Ed25519 public keys (hex, JSON list) whose signed incidents can trigger a rollback",
    )
    checkpoint_every: int = Field(100, ge=1, description="sign a checkpoint every this many audit entries")
    checkpoint_interval_s: float = Field(60.0, gt=0, description="and at least this often while entries arrive")
    consumer_group_prefix: str = Field(
        "governance", min_length=1, description="Kafka consumer groups are <prefix>-audit and <prefix>-rollback"
    )
    alias_reconcile_interval_s: float = Field(
        30.0, gt=0, description="how often registry aliases are checked (and set) against the deployment plans"
    )
    work_interval_s: float = Field(0.5, gt=0, description="how often pending checks, expiries and canaries run")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'governance.db').resolve()}"

    @model_validator(mode="after")
    # Not `_safe_for_production`: that name is the base class's check (loopback, auth), which this must not replace.
    def _safe_governance_for_production(self) -> Self:
        if self.profile == "production":
            problems = []
            if self.audit_signing_key is None:
                problems.append("no audit signing key (set MODELYARD_GOVERNANCE_AUDIT_SIGNING_KEY)")
            if self.event_signing_key is None:
                problems.append("no event signing key (set MODELYARD_GOVERNANCE_EVENT_SIGNING_KEY)")
            if not self.trusted_monitor_keys:
                problems.append("no trusted monitor keys (set MODELYARD_GOVERNANCE_TRUSTED_MONITOR_KEYS)")
            if self.policy_file is None:
                problems.append("no policy file (set MODELYARD_GOVERNANCE_POLICY_FILE)")
            if problems:
                raise ValueError("profile=production refuses unsafe settings: " + "; ".join(problems))
        return self
