"""Settings of the monitor service: environment variables `MODELYARD_MONITOR_*`."""

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from modelyard.monitor.domain.policy import (
    AlarmPolicy,
    MonitorPolicy,
    PerformancePolicy,
    QualityPolicy,
    RetrainingPolicy,
    SloPolicy,
    WindowPolicy,
)
from modelyard.monitor.domain.prediction_log import PredictionLogPolicy
from modelyard.settings import ServiceSettings


class MonitorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MODELYARD_MONITOR_")
    service_name: ClassVar[str] = "monitor"

    grpc_port: int = Field(default=50053, ge=0, le=65535)
    http_port: int = Field(default=8083, ge=0, le=65535)
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite file under data_dir")
    reference_source: Literal["local", "registry"] = Field(
        "local", description="where reference datasets come from: the registry (per version), or local files"
    )
    reference_dir: Path | None = Field(
        None,
        description="local reference datasets <dir>/<model>/<version>.parquet|csv (reference_source=local); "
        "default data_dir/references",
    )
    registry_address: str = Field("127.0.0.1:50051", description="registry gRPC address (reference_source=registry)")
    registry_token: SecretStr | None = Field(
        None, description="bearer token for the registry (role viewer suffices), if it requires one"
    )
    reference_wait_s: float = Field(
        10.0,
        ge=0,
        description="how long the consumer waits (outside its lock) for the first fetch of a version's reference "
        "before monitoring it for operations only until the fetch completes",
    )
    reference_retry_s: float = Field(
        60.0, gt=0, description="how soon a version's reference is asked for again after a failed fetch"
    )
    feedback_batch_max_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="request body limit of POST /api/v1/feedback/batch (413 beyond; at most 50,000 labels a request)",
    )
    event_signing_key: SecretStr | None = Field(
        None,
        description="Ed25519 private key seed (64 hex chars) that signs incidents; local default: "
        "<data_dir>/event-signing.key",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="SQLite fsync per checkpoint (FULL) or per WAL checkpoint (NORMAL: survives a process crash, "
        "may lose the last checkpoints on power loss)",
    )
    consumer_group: str = Field("modelyard-monitor", description="Kafka consumer group of the monitor instances")
    consumer_session_timeout_ms: int = Field(10_000, ge=1000, description="how soon a dead instance's partitions move")
    consumer_max_records: int = Field(
        500, ge=1, description="records per fetch; a fetch's events of one partition are checkpointed together"
    )
    consumer_max_partition_fetch_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="bytes per partition per fetch (a prediction batch is ~60 kB)"
    )

    window_max_events: int = Field(1000, ge=1, description="W: a window closes at this many events")
    window_max_seconds: float = Field(300.0, gt=0, description="T: or when the watermark passes start + T")
    window_min_events: int = Field(
        200, ge=1, description="no test runs on a window with fewer events (a smaller one moves into the next open one)"
    )
    allowed_lateness_s: float = Field(30.0, ge=0, description="watermark = latest event time - lateness")
    window_idle_flush_s: float = Field(
        120.0, ge=0, description="no prediction for this long (wall clock): watermark = now - lateness; 0: never"
    )
    false_incidents_per_week: float = Field(1.0, gt=0, description="false-alarm budget per model")
    open_after: int = Field(2, ge=1, description="k: breaching windows (of m) that open an incident")
    open_within: int = Field(3, ge=1, description="m")
    resolve_after: int = Field(3, ge=1, description="r: clean windows that resolve an incident")
    numeric_effect_floor: float = Field(0.1, ge=0, description="minimum normed Wasserstein distance to alert on")
    categorical_effect_floor: float = Field(0.1, ge=0, description="minimum Jensen-Shannon distance to alert on")
    performance_min_accuracy_drop: float = Field(
        0.02, gt=0, le=1, description="accuracy lost against the reference's that is worth a performance incident"
    )
    performance_critical_accuracy_drop: float = Field(
        0.05, gt=0, le=1, description="accuracy lost from which a performance incident is critical (can roll back)"
    )
    performance_min_error_increase: float = Field(
        0.1, gt=0, description="regression: MAE increase, relative to the reference's, worth a performance incident"
    )
    performance_critical_error_increase: float = Field(
        0.3, gt=0, description="regression: relative MAE increase from which a performance incident is critical"
    )
    performance_window_labels: int = Field(500, ge=10, description="labels per label window (the window-level test)")
    prediction_log_retention_s: float = Field(
        7 * 24 * 3600.0, gt=0, description="how long a prediction stays in the prediction log (`modelyard trace`)"
    )
    prediction_log_max_rows: int = Field(
        1_000_000, ge=0, description="predictions the log keeps at most, oldest pruned first (0: no prediction log)"
    )
    retrain_on: list[Literal["performance", "data_drift", "prediction_drift", "data_quality"]] = Field(
        default_factory=list,
        description="incident signals that suggest retraining: the model's recent labelled traffic is registered as "
        "a dataset snapshot and RetrainingSuggested published (needs reference_source=registry); empty: never",
    )
    retrain_snapshot_min_rows: int = Field(100, ge=1, description="labelled predictions needed for a snapshot")
    retrain_snapshot_max_rows: int = Field(10_000, ge=1, description="the newest labelled predictions it keeps")
    retrain_label_column: str = Field("target", min_length=1, description="the snapshot's column of labels")
    retrain_interval_s: float = Field(5.0, gt=0, description="how often open incidents are checked for snapshots")
    slo_latency_p99_ms: float = Field(250.0, gt=0)
    slo_error_rate: float = Field(0.01, ge=0)

    @model_validator(mode="after")
    def _safe_monitor_for_production(self) -> Self:
        if self.profile == "production" and self.event_signing_key is None:
            raise ValueError(
                "profile=production refuses unsafe settings: no event signing key "
                "(set MODELYARD_MONITOR_EVENT_SIGNING_KEY)"
            )
        return self

    @model_validator(mode="after")
    def _snapshots_go_to_the_registry(self) -> Self:
        if self.retrain_on and self.reference_source != "registry":
            raise ValueError("retrain_on registers snapshots in the registry: it needs reference_source=registry")
        if self.retrain_snapshot_min_rows > self.retrain_snapshot_max_rows:
            raise ValueError("retrain_snapshot_min_rows > retrain_snapshot_max_rows: no snapshot could be taken")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'monitor.db'}"

    @property
    def resolved_reference_dir(self) -> Path:
        return self.reference_dir or self.data_dir / "references"

    def policy(self) -> MonitorPolicy:
        return MonitorPolicy(
            window=WindowPolicy(
                max_events=self.window_max_events,
                max_seconds=self.window_max_seconds,
                min_events=self.window_min_events,
                allowed_lateness_s=self.allowed_lateness_s,
                idle_flush_s=self.window_idle_flush_s,
            ),
            alarm=AlarmPolicy(
                false_incidents_per_week=self.false_incidents_per_week,
                open_after=self.open_after,
                open_within=self.open_within,
                resolve_after=self.resolve_after,
                numeric_effect_floor=self.numeric_effect_floor,
                categorical_effect_floor=self.categorical_effect_floor,
            ),
            quality=QualityPolicy(),
            slo=SloPolicy(latency_p99_ms=self.slo_latency_p99_ms, error_rate=self.slo_error_rate),
            performance=PerformancePolicy(
                min_accuracy_drop=self.performance_min_accuracy_drop,
                critical_accuracy_drop=self.performance_critical_accuracy_drop,
                min_error_increase=self.performance_min_error_increase,
                critical_error_increase=self.performance_critical_error_increase,
                window_labels=self.performance_window_labels,
            ),
            retraining=RetrainingPolicy(
                signals=tuple(self.retrain_on),
                min_rows=self.retrain_snapshot_min_rows,
                max_rows=self.retrain_snapshot_max_rows,
                label_column=self.retrain_label_column,
            ),
        )

    def prediction_log(self) -> PredictionLogPolicy:
        return PredictionLogPolicy(retention_s=self.prediction_log_retention_s, max_rows=self.prediction_log_max_rows)
