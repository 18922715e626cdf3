"""The monitoring policy: every knob that changes a decision, hashed so each alert says which policy raised it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

WEEK_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class WindowPolicy:
    max_events: int = 1000  # W: a window closes at this many events...
    max_seconds: float = 300.0  # ...or when the watermark passes start + T, whichever first
    min_events: int = 200  # below this no test runs: the window neither breaches nor counts as clean (it merges on)
    allowed_lateness_s: float = 30.0  # watermark = latest event time seen - lateness
    idle_flush_s: float = 120.0  # no event for this long (wall clock): the watermark moves to now - lateness; 0: never


@dataclass(frozen=True)
class AlarmPolicy:
    # The budget in time: at most this many false incidents per model per week at the observed window rate.
    false_incidents_per_week: float = 1.0
    open_after: int = 2  # k breaches ...
    open_within: int = 3  # ... within the last m windows open an incident
    resolve_after: int = 3  # r consecutive clean windows resolve it
    # Effect-size floors: with a large n anything is "significant"; these say what is worth an alert.
    numeric_effect_floor: float = 0.1  # Wasserstein-1 / reference std
    categorical_effect_floor: float = 0.1  # Jensen-Shannon distance (base 2)
    critical_effect_ratio: float = 3.0  # effect >= ratio x floor is critical rather than a warning
    cusum_drift: float = 0.25  # CUSUM reference value k, in reference standard deviations


@dataclass(frozen=True)
class QualityPolicy:
    max_null_rate_increase: float = 0.05  # over the reference's own null rate
    max_new_category_rate: float = 0.02
    max_out_of_range_rate: float = 0.02
    max_schema_violation_rate: float = 0.0


@dataclass(frozen=True)
class SloPolicy:
    latency_p99_ms: float = 250.0
    error_rate: float = 0.01


@dataclass(frozen=True)
class PerformancePolicy:
    """Which outputs are the prediction, and how long a prediction waits for its label."""

    label_output: str = "label"  # output tensor with the predicted class (classification)
    score_output: str = "probabilities"  # output tensor with class scores ...
    score_index: int = 1  # ... and the positive class's position in it (AUC)
    value_output: str = "variable"  # output tensor with the predicted value (regression)
    positive_label: str = "1"
    label_ttl_s: float = 7 * 24 * 3600.0  # >= the longest label delay
    max_pending: int = 1_000_000  # predictions kept waiting for labels, oldest dropped first
    # The decay worth an incident, and the decay that makes it critical: accuracy points lost (classification),
    # or the MAE's increase relative to the reference's (regression).
    min_accuracy_drop: float = 0.02
    critical_accuracy_drop: float = 0.05
    min_error_increase: float = 0.1
    critical_error_increase: float = 0.3
    window_labels: int = 500  # labels per label window (the window-level test)


@dataclass(frozen=True)
class RetrainingPolicy:
    """Which incidents suggest retraining, and the snapshot of labelled traffic that goes with the suggestion."""

    signals: tuple[str, ...] = ()  # Signal values; empty: never (and predictions keep no features for it)
    min_rows: int = 100  # labelled predictions needed before a snapshot is taken (asked again while too few)
    max_rows: int = 10_000  # the newest labelled predictions of the model, at most this many
    label_column: str = "target"  # the snapshot's column of labels (as the reference datasets name it)

    @property
    def enabled(self) -> bool:
        return bool(self.signals)


@dataclass(frozen=True)
class MonitorPolicy:
    window: WindowPolicy = WindowPolicy()
    alarm: AlarmPolicy = AlarmPolicy()
    quality: QualityPolicy = QualityPolicy()
    slo: SloPolicy = SloPolicy()
    performance: PerformancePolicy = PerformancePolicy()
    retraining: RetrainingPolicy = RetrainingPolicy()

    @cached_property
    def config_hash(self) -> str:
        canonical = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
