"""What the registry's use cases need from the outside world; adapters implement these."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from modelyard.events.envelope import Event
from modelyard.registry.domain.logged_models import LoggedModel
from modelyard.registry.domain.model import (
    AliasMove,
    Artifact,
    DatasetSchema,
    MediaType,
    ModelVersion,
    RegisteredModel,
    Signature,
    StoredBlob,
    VersionStatus,
)
from modelyard.registry.domain.run_filter import Clause, OrderKey
from modelyard.registry.domain.tracking import (
    DatasetInput,
    Experiment,
    LifecycleStage,
    Metric,
    ModelOutput,
    Run,
    RunArtifact,
)


class TrackingTransaction(Protocol):
    """Experiments and runs, inside the registry's transaction."""

    def add_experiment(self, name: str, tags: Mapping[str, str], now_ms: int) -> str | None:
        """The new experiment's id; None (nothing written) when the name is taken."""

    def get_experiment(self, experiment_id: str | None = None, name: str | None = None) -> Experiment | None: ...

    def list_experiments(self, stage: LifecycleStage | None, after_id: int, limit: int) -> list[Experiment]: ...

    def set_experiment_tags(self, experiment_id: str, tags: Mapping[str, str]) -> None: ...

    def add_run(self, run: Run) -> None: ...

    def update_run(self, run_id: str, **values: Any) -> None:
        """Change the run's name, status, end_ms or lifecycle_stage."""

    def get_run(self, run_id: str) -> Run | None: ...

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        clauses: Sequence[Clause],
        order: Sequence[OrderKey],
        stage: LifecycleStage | None,
        offset: int,
        limit: int,
    ) -> list[Run]: ...

    def params_of(self, run_id: str, keys: Iterable[str]) -> dict[str, str]: ...

    def add_params(self, run_id: str, params: Mapping[str, str]) -> None: ...

    def set_run_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def delete_run_tag(self, run_id: str, key: str) -> bool: ...

    def add_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        """Append to the history and move each metric's latest value forward."""

    def metric_history(self, run_id: str, key: str, offset: int, limit: int) -> list[Metric]: ...

    def add_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None: ...

    def put_file(self, owner: str, artifact: RunArtifact) -> None:
        """Name a file of a run or of a logged model (`owner`: the run's id or the model's `m-...`)."""

    def files(self, owner: str, prefix: str) -> list[RunArtifact]:
        """The owner's files at `prefix` or under it (every file when `prefix` is empty), by path."""

    # MLflow 3's logged models

    def add_logged_model(self, model: LoggedModel) -> None: ...

    def get_logged_model(self, model_id: str) -> LoggedModel | None: ...

    def update_logged_model(self, model_id: str, **values: Any) -> None:
        """Change the model's status, status_message, lifecycle_stage or updated_ms."""

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        clauses: Sequence[Clause],
        order: Sequence[OrderKey],
        offset: int,
        limit: int,
    ) -> list[LoggedModel]: ...

    def set_logged_model_params(self, model_id: str, params: Mapping[str, str]) -> None: ...

    def set_logged_model_tags(self, model_id: str, tags: Mapping[str, str]) -> None: ...

    def delete_logged_model_tag(self, model_id: str, key: str) -> bool: ...

    def add_logged_model_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        """Record values about logged models (each names its model), as logged to `run_id`."""

    def add_run_outputs(self, run_id: str, outputs: Sequence[ModelOutput]) -> None: ...


class RegistryTransaction(TrackingTransaction, Protocol):
    """Queries and changes inside one transaction over the registry's state; events recorded here are published
    (outbox) only if it commits."""

    def add_model(self, model: RegisteredModel) -> bool:
        """Insert a model; False (and nothing written) if the name is taken, even under a concurrent insert."""

    def get_model(self, name: str) -> RegisteredModel | None: ...

    def model_exists(self, name: str) -> bool: ...

    def list_models(
        self, name_contains: str, tags: Mapping[str, str], after: str | None, limit: int
    ) -> list[RegisteredModel]: ...

    def lock_model(self, name: str) -> int | None:
        """The model's id, its row locked until the transaction ends (None: no such model)."""

    def next_version(self, name: str) -> int | None:
        """Hand out the model's next version number (None: no such model)."""

    def add_artifact(self, artifact: Artifact) -> None: ...

    def get_artifact(self, digest: str) -> Artifact | None: ...

    def lock_artifact(self, digest: str) -> None: ...

    def delete_artifact(self, digest: str) -> None: ...

    def referenced_digests(self) -> set[str]:
        """Every digest a version names, whatever its status (model, reference and lineage datasets)."""

    def add_version(self, version: ModelVersion) -> None: ...

    def get_version(self, name: str, version: int) -> ModelVersion | None: ...

    def list_versions(
        self,
        name: str,
        statuses: Sequence[VersionStatus],
        digest: str,
        tags: Mapping[str, str],
        after: tuple[str, int] | None,
        limit: int,
    ) -> list[ModelVersion]:
        """Versions by model name, then newest first; `after` is the (name, version) the previous page ended on."""

    def pending_versions(self, limit: int) -> list[tuple[str, int]]: ...

    def set_status(self, name: str, version: int, status: VersionStatus, message: str) -> None: ...

    def update_tags(self, name: str, version: int, set_tags: Mapping[str, str], remove: Sequence[str]) -> None: ...

    def tags_of(self, model_id: int, version: int) -> dict[str, str]: ...

    def get_alias(self, name: str, alias: str) -> int | None: ...

    def aliases_of(self, name: str) -> dict[str, int]: ...

    def move_alias(self, move: AliasMove) -> None:
        """Point (or delete, when `to_version` is None) an alias and append the move to its history."""

    def alias_history(self, name: str, alias: str, before_id: int | None, limit: int) -> list[tuple[int, AliasMove]]:
        """Moves of an alias, newest first, each with its cursor id."""

    def alias_as_of(self, name: str, alias: str, when: datetime) -> AliasMove | None:
        """The last move of the alias at or before `when`."""

    def record(self, event: Event) -> None:
        """Queue an event for the relay, committed (or rolled back) together with the change it describes."""


class RegistryStore(Protocol):
    def transaction(self, *, write: bool = False) -> AbstractContextManager[RegistryTransaction]: ...


class IncomingArtifact(Protocol):
    """Bytes being received, hashed and counted as they are written, invisible to readers until committed."""

    @property
    def size_bytes(self) -> int: ...

    @property
    def digest(self) -> str: ...

    def write(self, chunk: bytes) -> None:
        """Append a chunk; raises ResourceExhausted past the size limit."""

    def finish(self) -> str:
        """Flush to stable storage and return the "sha256:<hex>" digest of everything written."""


class StagedArtifact(IncomingArtifact, Protocol):
    """Incoming bytes in a private local file, for an inspector to read before they are committed."""

    @property
    def path(self) -> Path: ...


class ArtifactStore(Protocol):
    """Content-addressed artifact storage: an artifact's name is the sha256 of its bytes."""

    def stage(self, max_bytes: int) -> AbstractContextManager[StagedArtifact]:
        """A staged artifact (a local file, for inspection) that is removed on exit unless it was committed."""

    def receive(self, max_bytes: int) -> AbstractContextManager[IncomingArtifact]:
        """Incoming bytes that need no inspection, stored as they arrive where the store can (a remote store gets
        them without a local copy); discarded on exit unless committed."""

    def commit(self, staged: IncomingArtifact) -> None:
        """Make finished incoming bytes visible under their digest, atomically; a no-op if already stored."""

    def exists(self, digest: str) -> bool: ...

    def size(self, digest: str) -> int:
        """Stored size in bytes; raises NotFound."""

    def read(self, digest: str, chunk_size: int) -> Iterator[bytes]:
        """The artifact's bytes in chunks, verified against the digest as they go: DataLoss at the end if not."""

    def blobs(self) -> Iterator[StoredBlob]:
        """Every stored blob (not staged uploads), for garbage collection."""

    def stored_blob(self, digest: str) -> StoredBlob | None:
        """The blob's size and age now, or None when it is not stored."""

    def delete(self, digest: str) -> None:
        """Remove a stored blob (a no-op when it is already gone)."""


class ArtifactInspector(Protocol):
    """Safe ingestion of untrusted files: checks that the bytes are what their media type says."""

    def inspect_model(self, path: Path, media_type: MediaType, max_bytes: int) -> Signature:
        """The signature of a valid ONNX model (or bundle); InvalidArgument otherwise."""

    def inspect_dataset(self, path: Path, media_type: MediaType) -> DatasetSchema:
        """Columns and row count of a valid CSV or Parquet file; InvalidArgument otherwise."""
