"""Settings of the serving service: environment variables `MODELYARD_SERVING_*`."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from modelyard.auth import AuthSettings
from modelyard.events.signing import PublicKeyHex
from modelyard.runtime.workers import WorkerSettings
from modelyard.settings import ServiceSettings

# Kafka's default message.max.bytes and the producer's max_request_size are 1 MiB, headers included: a batch's
# payload stays under that with room for the CloudEvents headers and the key.
MAX_MESSAGE_BYTES = 1_000_000


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may run on: its affinity, capped by the cgroup v2 quota ("200000 100000" is two
    cores, rounded up; "max" is no cap), so that a container limited to 2 CPUs on a 64-core node runs 2 workers."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return cores
    if quota == "max":
        return cores
    return max(1, min(cores, math.ceil(int(quota) / int(period))))


class ServingAuthSettings(AuthSettings):
    require_inference_token: bool | None = Field(
        None,
        description="inference needs a token with role inference, model metadata one with role inference or "
        "viewer; default: on with profile=production, off with profile=local",
    )


class ServingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MODELYARD_SERVING_")
    service_name: ClassVar[str] = "serving"

    # Triton's default ports, so tritonclient and KServe users find the server where they expect it.
    grpc_port: int = Field(default=8001, ge=0, le=65535)
    http_port: int = Field(default=8000, ge=0, le=65535)

    workers: int = Field(
        default_factory=usable_cores,
        ge=1,
        description="worker processes sharing the gRPC and HTTP ports (SO_REUSEPORT), each a full replica under one "
        "supervisor, which restarts a worker that dies; readiness and /metrics are those of all of them. "
        "Default: the cores this process may use (its CPU affinity, capped by a cgroup v2 CPU limit: a container's "
        "share, not the node's); 1: one process, no supervisor",
    )
    worker: WorkerSettings | None = Field(
        None, description="set by the supervisor in the environment of each worker process; never set by hand"
    )
    kafka_required: bool = Field(
        False,
        description="serving answers without the broker: a broker outage shows as degraded (/readyz, status, "
        "metrics), never as not ready, so a load balancer does not turn it into a prediction outage",
    )
    replica: str = Field(default_factory=socket.gethostname, description="this replica's name in status events")
    plan_source: Literal["file", "governance"] = Field(
        "file",
        description="where startup plans come from: governance's ListDeploymentPlans, or a plan file (standalone)",
    )
    plan_file: Path | None = Field(None, description="JSON plan file (default: <data_dir>/serving/plans.json)")
    governance_address: str = Field("127.0.0.1:50054", description="governance gRPC address (plan_source=governance)")
    governance_token: SecretStr | None = Field(None, description="bearer token for governance, if it requires one")
    governance_timeout_s: float = Field(10.0, gt=0, description="deadline of one call to governance")
    trusted_governance_keys: list[PublicKeyHex] = Field(
        default_factory=list,
        description="Ed25519 public keys (hex, JSON list) whose signed decisions serving enacts; several while "
        "governance's key rotates. Decisions signed by any other key, or unsigned, are dead-lettered",
    )
    startup_plans_deadline_s: float = Field(
        300.0,
        ge=0,
        description="how long to keep asking an unavailable plan source at startup before the replica exits",
    )
    artifact_source: Literal["local", "registry"] = Field("local", description="where artifacts are fetched from")
    model_dir: Path | None = Field(
        None, description="local artifacts, <model>/<version>/model.onnx (default: <data_dir>/serving/models)"
    )
    registry_address: str = Field("127.0.0.1:50051", description="registry gRPC address (artifact_source=registry)")
    registry_token: SecretStr | None = Field(None, description="bearer token for the registry, if it requires one")
    artifact_retry_max_s: float = Field(
        30.0,
        gt=0,
        description="a planned version whose artifact cannot be fetched (source away) is tried again, waits "
        "doubling from 0.5 s up to this; its model answers UNAVAILABLE and the replica is not ready meanwhile",
    )
    auth: ServingAuthSettings = Field(
        default_factory=ServingAuthSettings, description="bearer tokens (JSON), OIDC, anonymous access, inference"
    )

    inline_below_us: float = Field(
        200.0, ge=0, description="a version whose one-row warm-up call is faster than this runs on the event loop"
    )
    pool_threads: int = Field(2, ge=1, description="worker threads for versions that do not run inline")
    intra_op_threads: int = Field(1, ge=1, description="onnxruntime threads per session")
    max_batch_rows: int = Field(64, ge=1, description="dynamic batching: most rows per run (1 turns batching off)")
    max_queue_delay_us: float = Field(
        0.0,
        ge=0,
        description="dynamic batching (Triton's max queue delay): under load (the last batch had company), a batch "
        "waits for more requests while they keep coming (each within a one-row run's measured cost), up to this in "
        "all; never at one request in flight. 0 (default): batches only form while a run is busy, which measured "
        "best where per-request work outweighs the model (docs/serving.md)",
    )
    batch_overhead_us: float = Field(
        50.0,
        ge=0,
        description="what batching costs per run (queue, concatenate, split); a version whose one-row call costs at "
        "least this batches while its measured runs (warm-up, then every run) say a full batch saves more than it",
    )
    drain_timeout_s: float = Field(30.0, gt=0, description="how long a replaced version may finish its requests")
    reject_non_finite: list[str] = Field(
        default_factory=list, description='models whose float inputs must be finite (NaN/inf rejected); "*" for all'
    )
    max_elements: int = Field(1 << 26, gt=0, description="largest input tensor accepted, in elements")
    max_request_bytes: int = Field(
        64 << 20, gt=0, description="largest REST inference request body, JSON and binary tensor data (413 beyond)"
    )
    max_json_bytes: int = Field(
        8 << 20,
        gt=0,
        description="largest JSON part of a REST inference request (413 beyond); larger tensors go as binary data",
    )

    stream_enabled: bool = Field(True, description="publish every prediction on modelyard.serving.predictions")
    stream_buffer: int = Field(100_000, gt=0, description="predictions buffered before new ones are dropped")
    stream_interval_s: float = Field(0.05, gt=0, description="how often buffered predictions are published")
    stream_max_values: int = Field(1024, gt=0, description="tensors larger than this many values are cut")
    stream_large_sample_rate: float = Field(0.1, ge=0, le=1, description="share of large tensors recorded at all")
    stream_max_request_id_bytes: int = Field(
        128,
        gt=0,
        description="request ids are cut to this many bytes in prediction records (answers keep them whole; the "
        "monitor's request id column holds 128)",
    )
    stream_max_record_bytes: int = Field(
        128 * 1024,
        gt=0,
        description="a prediction record above this many bytes is published without its tensors (at most half of "
        "stream_max_batch_bytes)",
    )
    stream_max_batch_bytes: int = Field(
        512 * 1024,
        gt=0,
        le=MAX_MESSAGE_BYTES,
        description="payload bytes of one prediction batch (one Kafka message); at most 1000000, under the 1 MiB "
        "message limit of Kafka's default and of the producer",
    )
    shadow_queue: int = Field(1000, gt=0, description="requests waiting for shadow versions before copies drop")

    explain_workers: int = Field(
        1, ge=1, description="worker processes computing explanations, apart from the inference pool"
    )
    explain_queue: int = Field(
        1, ge=0, description="explanations that may wait for a worker; more answer RESOURCE_EXHAUSTED (HTTP 429)"
    )
    explain_background_rows: int = Field(
        50, ge=1, description="background sample drawn (seeded) from a version's reference dataset for explanations"
    )
    explain_permutations: int = Field(
        5,
        ge=1,
        description="permutations per explained row; each costs (2 x features + 1) model runs on the background",
    )
    explain_max_rows: int = Field(16, ge=1, description="rows one explanation request may ask for")
    explain_niceness: int = Field(
        19, ge=0, le=19, description="nice increment of the explanation workers: inference first when cores are short"
    )

    @model_validator(mode="after")
    def _safe_serving_for_production(self) -> Self:
        if self.profile == "production" and not self.trusted_governance_keys:
            raise ValueError(
                "profile=production refuses unsafe settings: no trusted governance keys "
                "(set MODELYARD_SERVING_TRUSTED_GOVERNANCE_KEYS): every decision would be refused"
            )
        return self

    @model_validator(mode="after")
    def _records_fit_in_batches(self) -> Self:
        if self.stream_max_record_bytes > self.stream_max_batch_bytes // 2:
            raise ValueError("stream_max_record_bytes must be at most half of stream_max_batch_bytes")
        return self

    @property
    def inference_token_required(self) -> bool:
        if self.auth.require_inference_token is None:
            return self.profile == "production"
        return self.auth.require_inference_token

    @property
    def worker_replica(self) -> str:
        """This process's replica name: each worker is a replica of its own, seeing every decision."""
        return self.replica if self.worker is None else f"{self.replica}-w{self.worker.index}"

    @property
    def plans_path(self) -> Path:
        return self.plan_file or self.data_dir / "serving" / "plans.json"

    @property
    def models_path(self) -> Path:
        return self.model_dir or self.data_dir / "serving" / "models"
