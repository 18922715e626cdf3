"""Incidents, not alert storms: k-of-m breaching windows open one, a higher severity updates it, r clean windows
resolve it. Keyed by (model, version, signal, feature); data and prediction drift are keyed by the model as a whole
(feature MODEL_LEVEL) and name the drifted features in their evidence. Ids derive from the key and the window that
opened the incident, and event ids from the incident, its state change and the window, so a replay after a crash
produces byte-identical alerts that consumers de-duplicate."""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from modelyard.monitor.domain.policy import AlarmPolicy

_NAMESPACE = uuid.UUID("5d7c1c9e-0f55-4c2a-9f0e-6d1f4a7b9e01")

# The feature of a key about the model as a whole: a drift family's incident (the features are in its evidence).
MODEL_LEVEL = ""


class Signal(StrEnum):
    DATA_DRIFT = "data_drift"
    PREDICTION_DRIFT = "prediction_drift"
    PERFORMANCE = "performance"
    DATA_QUALITY = "data_quality"
    LATENCY = "latency"
    ERROR_RATE = "error_rate"


class Severity(IntEnum):
    INFO = 1
    WARNING = 2
    CRITICAL = 3


class Change(StrEnum):
    OPENED = "opened"
    UPDATED = "updated"
    RESOLVED = "resolved"


@dataclass(frozen=True, order=True)
class IncidentKey:
    model_name: str
    model_version: int
    signal: Signal
    feature: str

    def __str__(self) -> str:
        return f"{self.model_name}/{self.model_version}/{self.signal.value}/{self.feature}"


@dataclass(frozen=True)
class Evidence:
    feature: str
    statistic: str
    value: float
    p_value: float
    threshold: float
    effect_size: float
    n_reference: int
    n_current: int
    window_start: float
    window_end: float


@dataclass(frozen=True)
class Outcome:
    """What one window says about one key: a breach (with its severity and evidence) or clean. A decisive breach
    comes from a sequential test whose threshold spends the false-alarm budget in time by itself (the performance
    CUSUM): it opens an incident without waiting for k of m."""

    key: IncidentKey
    breached: bool
    severity: Severity = Severity.INFO
    evidence: tuple[Evidence, ...] = ()
    decisive: bool = False


@dataclass(frozen=True)
class IncidentChange:
    incident_id: str
    event_id: str
    change: Change
    key: IncidentKey
    severity: Severity
    evidence: tuple[Evidence, ...]
    window: str


@dataclass
class Tracker:
    """Recent outcomes of one key and its open incident, if any."""

    recent: deque[bool] = field(default_factory=deque)
    incident_id: str | None = None
    severity: Severity = Severity.INFO
    clean_streak: int = 0

    def idle(self) -> bool:
        """Nothing worth keeping: no open incident and no breach that could still count towards one."""
        return self.incident_id is None and not any(self.recent)


class IncidentBook:
    """Trackers of every key that has recently breached or has an open incident."""

    def __init__(self, policy: AlarmPolicy, trackers: dict[IncidentKey, Tracker] | None = None) -> None:
        self.policy = policy
        self.trackers: dict[IncidentKey, Tracker] = trackers or {}

    def observe(self, outcome: Outcome, window: str) -> IncidentChange | None:
        tracker = self.trackers.get(outcome.key)
        if tracker is None:
            if not outcome.breached:
                return None  # clean and never breached: nothing to remember
            tracker = self.trackers[outcome.key] = Tracker(deque(maxlen=self.policy.open_within))
        tracker.recent.append(outcome.breached)
        change = self._advance(tracker, outcome, window)
        if tracker.idle():
            del self.trackers[outcome.key]
        return change

    def _advance(self, tracker: Tracker, outcome: Outcome, window: str) -> IncidentChange | None:
        if outcome.breached:
            tracker.clean_streak = 0
            if tracker.incident_id is None and (outcome.decisive or sum(tracker.recent) >= self.policy.open_after):
                tracker.incident_id = str(uuid.uuid5(_NAMESPACE, f"{outcome.key}|{window}"))
                tracker.severity = outcome.severity
                return self._change(tracker, Change.OPENED, outcome, window)
            if tracker.incident_id is not None and outcome.severity > tracker.severity:
                tracker.severity = outcome.severity
                return self._change(tracker, Change.UPDATED, outcome, window)
            return None
        if tracker.incident_id is None:
            return None
        tracker.clean_streak += 1
        if tracker.clean_streak < self.policy.resolve_after:
            return None
        change = self._change(tracker, Change.RESOLVED, outcome, window)
        tracker.incident_id, tracker.severity, tracker.clean_streak = None, Severity.INFO, 0
        tracker.recent.clear()
        return change

    @staticmethod
    def _change(tracker: Tracker, change: Change, outcome: Outcome, window: str) -> IncidentChange:
        assert tracker.incident_id is not None
        return IncidentChange(
            incident_id=tracker.incident_id,
            event_id=str(uuid.uuid5(_NAMESPACE, f"{tracker.incident_id}|{change.value}|{window}")),
            change=change,
            key=outcome.key,
            severity=tracker.severity,
            evidence=outcome.evidence,
            window=window,
        )
