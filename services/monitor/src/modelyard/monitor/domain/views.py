"""What the query APIs return: read models built by the store from its tables."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelyard.monitor.domain.evaluation import WindowReport
from modelyard.monitor.domain.incidents import Evidence, Severity, Signal
from modelyard.monitor.domain.metrics import MetricEstimate


@dataclass(frozen=True)
class VersionStatus:
    model_name: str
    model_version: int
    reference_id: str
    records_seen: int
    late_records: int
    windows_closed: int
    open_incidents: int
    last_window: WindowReport | None
    performance: dict[str, float] = field(default_factory=dict)
    label_coverage: float = 0.0


@dataclass(frozen=True)
class PerformanceWindow:
    """Realised performance of one window slot, from the labels joined to its predictions so far."""

    start: float  # seconds since the epoch (event time)
    end: float
    predictions: int
    labelled: int
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class PerformanceHistory:
    baseline: Mapping[str, MetricEstimate]  # of the active reference; empty without outputs and truth in it
    windows: Sequence[PerformanceWindow]


@dataclass(frozen=True)
class IncidentView:
    incident_id: str
    model_name: str
    model_version: int
    signal: Signal
    feature: str
    severity: Severity
    open: bool
    opened_at: float  # seconds since the epoch, wall clock of the monitor
    resolved_at: float | None
    evidence: tuple[Evidence, ...]
    reference_id: str
    config_hash: str


def json_safe(value: Any) -> Any:
    """`value` as plain JSON data (dataclasses as dicts, mapping keys as strings), NaN and infinities as None: JSON
    has neither, and a limit check has no p-value. One pass, no copies (it runs for every closed window)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


@dataclass(frozen=True)
class SnapshotView:
    """A retraining snapshot the monitor registered: the dataset artifact and where its rows came from."""

    incident_id: str
    model_name: str
    model_version: int  # of the incident
    digest: str
    rows: int
    label_column: str
    windows: tuple[str, ...]
    created_at: float  # seconds since the epoch, wall clock of the monitor
