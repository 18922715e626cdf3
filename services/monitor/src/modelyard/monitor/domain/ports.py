"""The monitor's ports: what its use cases need from the outside world, typed over domain objects only.

Adapters implement them (the SQL store, Prometheus metrics, the registry and local reference sources); the
handlers depend on nothing else, and the entrypoints hand them `Consumed` events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from opentelemetry import trace

from modelyard.events.envelope import Position
from modelyard.monitor.domain.evaluation import WindowReport
from modelyard.monitor.domain.incidents import IncidentChange
from modelyard.monitor.domain.performance import LabelledPrediction, PendingBatch, PendingPrediction
from modelyard.monitor.domain.prediction_log import LoggedBatch, PredictionTrace
from modelyard.monitor.domain.profile import ReferenceProfile
from modelyard.monitor.domain.snapshot import Snapshot, SnapshotRequest
from modelyard.monitor.domain.state import VersionState
from modelyard.monitor.domain.views import IncidentView, PerformanceWindow, SnapshotView, VersionStatus
from modelyard.monitor.domain.windows import Columns, WindowId

T = TypeVar("T")
Partition = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True, eq=False)
class Consumed(Generic[T]):
    """One consumed event's content, where in its stream it was read, and the span to handle it in."""

    position: Position
    content: T
    span: trace.Span = trace.INVALID_SPAN


@dataclass(frozen=True, eq=False)
class ReferenceData:
    columns: Mapping[str, npt.NDArray[np.generic]]
    source: str  # e.g. the artifact digest or file path, recorded in the profile
    names: Mapping[str, str] = field(default_factory=dict)  # column -> registered feature name, where known


class ReferenceSource(Protocol):
    """Where a model version's reference dataset comes from (the registry, or local files)."""

    def load(self, model_name: str, model_version: int) -> ReferenceData:
        """Raises ReferenceNotFound when the version has no reference dataset, ReferenceUnavailable when the source
        may have it later (it is unreachable, or the version is still being registered)."""
        ...

    def close(self) -> None: ...


@dataclass(eq=False)
class Checkpoint:
    """What one event changed for one version; the store writes all checkpoints of an event in one transaction."""

    state: VersionState
    profile: ReferenceProfile
    appended: list[tuple[WindowId, Columns]] = field(default_factory=list)
    closed: list[WindowId] = field(default_factory=list)
    merged: list[tuple[WindowId, WindowId]] = field(default_factory=list)  # (sliver, the open window it moved into)
    reports: list[WindowReport] = field(default_factory=list)
    changes: list[IncidentChange] = field(default_factory=list)
    pending: list[PendingBatch] = field(default_factory=list)  # waiting for their labels
    logged: list[LoggedBatch] = field(default_factory=list)  # for the prediction log
    slot_counts: dict[int, int] = field(default_factory=dict)  # predictions per window slot (label coverage)
    window_traces: dict[str, dict[str, str]] = field(default_factory=dict)  # W3C context of each closed window's span


class MonitorStore(Protocol):
    def active_profile(self, model_name: str, model_version: int) -> ReferenceProfile | None: ...

    def save_profile(self, profile: ReferenceProfile) -> None:
        """Store `profile` (if new) and make it the version's active one."""
        ...

    def load_state(self, model_name: str, model_version: int) -> VersionState | None: ...

    def positions(self) -> dict[Partition, int]:
        """The next offset to read of every partition a checkpoint covered."""
        ...

    def pending_predictions(self, request_ids: Sequence[str]) -> dict[str, PendingPrediction]: ...

    def checkpoint(
        self,
        positions: Mapping[Partition, int],
        checkpoints: Sequence[Checkpoint],
        config_hash: str,
        labels: Sequence[LabelledPrediction] = (),
    ) -> None:
        """Atomically: store the partitions' next offsets, each version's state, chunks, reports and incident
        changes (with their events in the outbox), and the joined labels (their predictions stop waiting).
        Raises on any failure, having written nothing."""
        ...

    def statuses(self, model_name: str = "") -> list[VersionStatus]: ...

    def window_reports(self, model_name: str, model_version: int, limit: int = 100) -> list[WindowReport]: ...

    def performance_windows(self, model_name: str, model_version: int, limit: int = 100) -> list[PerformanceWindow]:
        """Realised performance per window slot with labels, newest first."""
        ...

    def incident_views(
        self, model_name: str = "", *, open_only: bool = False, limit: int = 100
    ) -> list[IncidentView]: ...

    def prediction_trace(self, request_id: str) -> PredictionTrace | None:
        """The logged prediction with its window and the incidents of its version open at its event time."""
        ...

    def awaiting_snapshot(self, signals: Sequence[str]) -> list[SnapshotRequest]:
        """Open incidents of these signals that have no retraining snapshot yet."""
        ...

    def labelled_traffic(self, model_name: str, limit: int) -> list[LabelledPrediction]:
        """The model's newest labelled predictions that kept their features, newest first."""
        ...

    def save_snapshot(self, snapshot: Snapshot, digest: str) -> bool:
        """Record the snapshot with its `RetrainingSuggested` event (outbox); False if the incident has one."""
        ...

    def snapshot_views(self, model_name: str, limit: int = 100) -> list[SnapshotView]: ...


class DatasetRegistry(Protocol):
    """Where snapshots are registered as dataset artifacts (the registry)."""

    def register_dataset(self, data: bytes, media_type: str) -> str:
        """Upload `data`; its digest ("sha256:..."). Raises ReferenceUnavailable when the registry cannot take it
        now."""
        ...


class Metrics(Protocol):
    def observe_window(self, report: WindowReport) -> None: ...

    def observe_changes(self, changes: Sequence[IncidentChange]) -> None: ...

    def observe_performance(self, model_name: str, model_version: int, metric: str, value: float) -> None:
        """The realised metric of a label window that filled."""
        ...
