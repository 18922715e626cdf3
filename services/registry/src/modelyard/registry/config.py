"""Settings of the registry service: environment variables `MODELYARD_REGISTRY_*`."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from modelyard.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MODELYARD_REGISTRY_")
    service_name: ClassVar[str] = "registry"

    grpc_port: int = Field(50051, ge=0, le=65535)
    http_port: int = Field(8081, ge=0, le=65535)
    database_url: str = Field(
        "", description="SQLAlchemy URL (sqlite:///... or postgresql+psycopg://...); default: SQLite in data_dir"
    )
    artifacts_dir: Path | None = Field(
        None, description="content-addressed artifact store; default: data_dir/artifacts"
    )
    artifacts_url: str = Field(
        "",
        pattern=r"^(s3://[a-z0-9][a-z0-9.-]{1,62}(/.*)?)?$",
        description="s3://bucket/prefix to keep artifacts on S3 (or an S3-compatible server); empty: artifacts_dir",
    )
    s3_endpoint_url: str = Field("", description="S3 endpoint (MinIO, Ceph, moto, ...); empty: AWS's")
    s3_region: str = Field("us-east-1", description="S3 region")
    s3_access_key_id: str = Field("", description="S3 access key; empty: boto3's chain (env, web identity, role)")
    s3_secret_access_key: SecretStr = Field(SecretStr(""), description="S3 secret key, with s3_access_key_id")
    max_artifact_bytes: int = Field(2 * 1024**3, gt=0, description="largest artifact accepted, in bytes")
    staging_idle_s: float = Field(
        3600.0,
        gt=0,
        description="at start, staged uploads (local files; on S3 also multipart uploads and objects under "
        "<prefix>/staging/) not written to for this long are removed (left by a killed process; younger ones may be "
        "another replica's upload in progress)",
    )
    gc_grace_s: float = Field(
        3600.0,
        ge=0,
        description="`modelyard registry gc` spares unreferenced blobs younger than this (an upload stores its bytes "
        "before the version that names them is registered)",
    )
    protected_aliases: frozenset[str] = Field(
        frozenset({"production"}), description="aliases only approvers and services may move"
    )
    check_interval_s: float = Field(0.5, gt=0, description="how often pending versions are looked for")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'registry.db').resolve()}"

    @property
    def resolved_artifacts_dir(self) -> Path:
        return self.artifacts_dir or self.data_dir / "artifacts"
