"""The monitor use cases: take domain objects and ports, return results and events.

`Monitor.handle_predictions` is the hot path: it runs off the event loop (a consumer's batch handler), turns each
event's predictions into columns per model version, adds them to the version's windows, evaluates the windows that
closed and checkpoints everything the events changed, together with the stream positions they were read from (the
next offset of each partition), in one store transaction. The consumer resumes from those positions, and an event
from before them is a no-op, so window counts are exact on at-least-once input; a failed checkpoint drops the
in-memory state, which is rebuilt from the store on the next event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from modelyard.events.envelope import Position
from modelyard.monitor.domain.errors import InvalidArgument, ReferenceNotFound, ReferenceUnavailable
from modelyard.monitor.domain.evaluation import WindowReport, evaluate_window
from modelyard.monitor.domain.incidents import IncidentChange
from modelyard.monitor.domain.performance import (
    LabelledPrediction,
    PendingPrediction,
    PendingRow,
    error_cusum_step,
    pending_predictions,
    performance_outcome,
)
from modelyard.monitor.domain.policy import MonitorPolicy
from modelyard.monitor.domain.profile import ProfileOptions, ReferenceProfile, build_profile
from modelyard.monitor.domain.records import PredictionRows
from modelyard.monitor.domain.state import VersionState
from modelyard.monitor.domain.views import IncidentView, VersionStatus
from modelyard.monitor.domain.windows import ClosedWindow, Columns, WindowId

log = logging.getLogger(__name__)

_NO_ROWS: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)

# How long a version without reference data is monitored for operations only before the source is asked again.
REFERENCE_RETRY_S = 60.0
# A window's span links to its first records' inference spans and to the batches that filled it: 64 + 64 stays
# within OpenTelemetry's default span link limit (128).
MAX_RECORD_LINKS = 64
MAX_BATCH_LINKS = 64
_TRACE_CONTEXT = TraceContextTextMapPropagator()

T = TypeVar("T")
Partition = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True, eq=False)
class Consumed(Generic[T]):
    """One consumed event's content, where in its stream it was read, and the span to handle it in."""

    position: Position
    content: T
    span: trace.Span = trace.INVALID_SPAN


@dataclass(frozen=True)
class Feedback:
    request_id: str
    truth: str | float  # a class label, or a target value


@dataclass(frozen=True, eq=False)
class ReferenceData:
    columns: Mapping[str, npt.NDArray[np.generic]]
    source: str  # e.g. the artifact digest or file path, recorded in the profile


class ReferenceSource(Protocol):
    """Where a model version's reference dataset comes from (the registry, or local files)."""

    def load(self, model_name: str, model_version: int) -> ReferenceData:
        """Raises ReferenceNotFound when the version has no reference dataset, ReferenceUnavailable when the source
        may have it later (it is unreachable, or the version is still being registered)."""
        ...


@dataclass(eq=False)
class Checkpoint:
    """What one event changed for one version; the store writes all checkpoints of an event in one transaction."""

    state: VersionState
    profile: ReferenceProfile
    appended: list[tuple[WindowId, Columns]] = field(default_factory=list)
    closed: list[WindowId] = field(default_factory=list)
    reports: list[WindowReport] = field(default_factory=list)
    changes: list[IncidentChange] = field(default_factory=list)
    pending: list[PendingRow] = field(default_factory=list)  # waiting for their labels
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

    def incident_views(
        self, model_name: str = "", *, open_only: bool = False, limit: int = 100
    ) -> list[IncidentView]: ...


class Metrics(Protocol):
    def observe_window(self, report: WindowReport) -> None: ...

    def observe_changes(self, changes: Sequence[IncidentChange]) -> None: ...


@dataclass
class _WindowTrace:
    """What an open window's span will link to: the first records' trace contexts and the batches that filled it.

    In memory only (a few strings per window): after a restart, a window restored from the store links to the
    records and batches that arrived since.
    """

    records: list[str] = field(default_factory=list)  # W3C traceparents
    batches: list[SpanContext] = field(default_factory=list)

    def add(self, batch: SpanContext, traceparents: list[str], rows: npt.NDArray[np.int64]) -> None:
        if batch.is_valid and len(self.batches) < MAX_BATCH_LINKS and batch not in self.batches[-1:]:
            self.batches.append(batch)
        room = MAX_RECORD_LINKS - len(self.records)
        if room <= 0:
            return
        for row in rows.tolist():
            traceparent = traceparents[row]
            if traceparent:
                self.records.append(traceparent)
                room -= 1
                if room == 0:
                    return

    def links(self, parent: SpanContext) -> list[Link]:
        records = [
            Link(context, {"modelyard.link": "prediction"})
            for traceparent in self.records
            if (context := _span_context(traceparent)) is not None
        ]
        batches = [Link(batch, {"modelyard.link": "batch"}) for batch in self.batches if batch != parent]
        return records + batches


def _span_context(traceparent: str) -> SpanContext | None:
    context = trace.get_current_span(_TRACE_CONTEXT.extract({"traceparent": traceparent})).get_span_context()
    return context if context.is_valid else None


@dataclass
class _Version:
    state: VersionState
    profile: ReferenceProfile
    reference_checked_at: float
    dropped: list[WindowId] = field(default_factory=list)  # open windows dropped by a change of reference
    traces: dict[WindowId, _WindowTrace] = field(default_factory=dict)  # of the open windows

    def drop_open_windows(self) -> None:
        self.dropped += [w.id for w in self.state.assembler.open.values()]
        self.state.assembler.open.clear()
        self.traces.clear()


class Monitor:
    def __init__(
        self,
        store: MonitorStore,
        references: ReferenceSource,
        policy: MonitorPolicy,
        metrics: Metrics,
        profile_options: ProfileOptions | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.store = store
        self.references = references
        self.policy = policy
        self.metrics = metrics
        self.profile_options = profile_options or ProfileOptions()
        self.tracer = tracer or trace.get_tracer(__name__)
        self._versions: dict[tuple[str, int], _Version] = {}
        self._positions: dict[Partition, int] | None = None  # the store's, once read
        # The consumer's worker thread and API calls (rebaseline) both touch version state.
        self._lock = threading.Lock()

    def resume_positions(self, partitions: Collection[Partition]) -> dict[Partition, int]:
        """Where to resume reading `partitions` (the consumer asks on every assignment). What is in memory may
        be stale now (another instance may have had these partitions): it is read again from the store."""
        with self._lock:
            self._versions.clear()
            self._positions = self.store.positions()
            return {p: self._positions[p] for p in partitions if p in self._positions}

    def restart_positions(self, partitions: Collection[Partition]) -> None:
        """The broker lost these partitions and re-created them: their events are read again from offset 0, and
        none of them was applied yet (the windows keep what the lost ones brought)."""
        with self._lock:
            self.store.checkpoint({p: 0 for p in partitions}, [], self.policy.config_hash)
            self._positions = None

    def handle_predictions(self, events: Sequence[Consumed[Sequence[PredictionRows]]]) -> list[IncidentChange]:
        """Window the events' predictions; the incident changes they caused (already in the outbox)."""
        with self._lock:
            fresh = self._fresh(events)
            checkpoints: dict[tuple[str, int], Checkpoint] = {}
            try:
                for event in fresh:
                    with trace.use_span(event.span):
                        for rows in event.content:
                            self._add(rows, checkpoints)
                self._checkpoint(fresh, checkpoints)
            except BaseException:
                self._forget()
                raise
        changes = [c for cp in checkpoints.values() for c in cp.changes]
        for cp in checkpoints.values():
            for report in cp.reports:
                self.metrics.observe_window(report)
        self.metrics.observe_changes(changes)
        return changes

    def handle_feedback(self, events: Sequence[Consumed[Feedback]]) -> int:
        """Join labels with their predictions and advance the versions' error detectors; how many joined. A label
        too early (its prediction is not windowed yet) or too late (past the TTL) is counted, not joined."""
        with self._lock:
            fresh = self._fresh(events)
            waiting = self.store.pending_predictions([e.content.request_id for e in fresh])
            checkpoints: dict[tuple[str, int], Checkpoint] = {}
            joined = []
            try:
                for event in fresh:
                    prediction = waiting.pop(event.content.request_id, None)  # a label joins once
                    if prediction is None:
                        continue
                    truth = event.content.truth
                    labelled = LabelledPrediction(
                        prediction,
                        truth if isinstance(truth, str) else None,
                        truth if isinstance(truth, float) else None,
                    )
                    joined.append(labelled)
                    version = self._version(prediction.model_name, prediction.model_version)
                    key = (prediction.model_name, prediction.model_version)
                    checkpoints.setdefault(key, Checkpoint(version.state, version.profile))
                    if labelled.error is not None:
                        error_cusum_step(version.state, version.profile, labelled.error, self.policy)
                self._checkpoint(fresh, checkpoints, joined)
            except BaseException:
                self._forget()
                raise
        return len(joined)

    def _fresh(self, events: Sequence[Consumed[T]]) -> list[Consumed[T]]:
        """The events from at or after their partition's stored position (earlier ones were applied already)."""
        if self._positions is None:
            self._positions = self.store.positions()
        positions = self._positions
        return [e for e in events if e.position.offset >= positions.get(e.position[:2], 0)]

    def _checkpoint(
        self,
        events: Sequence[Consumed[T]],
        checkpoints: Mapping[tuple[str, int], Checkpoint],
        labels: Sequence[LabelledPrediction] = (),
    ) -> None:
        if not events:
            return
        positions = {(e.position.topic, e.position.partition): e.position.offset + 1 for e in events}
        self.store.checkpoint(positions, list(checkpoints.values()), self.policy.config_hash, labels)
        assert self._positions is not None
        self._positions.update(positions)

    def _forget(self) -> None:
        """After a failed checkpoint: in-memory state may be ahead of the store, which has the truth."""
        self._versions.clear()
        self._positions = None

    def statuses(self, model_name: str = "") -> list[VersionStatus]:
        return self.store.statuses(model_name)

    def window_reports(self, model_name: str, model_version: int, limit: int = 100) -> list[WindowReport]:
        return self.store.window_reports(model_name, model_version, limit)

    def incident_views(self, model_name: str = "", *, open_only: bool = False, limit: int = 100) -> list[IncidentView]:
        return self.store.incident_views(model_name, open_only=open_only, limit=limit)

    def rebaseline(self, model_name: str, model_version: int) -> ReferenceProfile:
        """Profile the version's reference data again and make it the reference from the next window on.

        The open windows are dropped (their rows were collected against the old reference); incidents stay open
        until clean windows against the new reference resolve them.
        """
        profile = self._build_profile(model_name, model_version)
        with self._lock:
            self.store.save_profile(profile)
            self._versions.pop((model_name, model_version), None)
            version = self._load(model_name, model_version)
            version.drop_open_windows()
            checkpoint = Checkpoint(version.state, profile, closed=version.dropped)
            self.store.checkpoint({}, [checkpoint], self.policy.config_hash)
            version.dropped = []
        return profile

    def _add(self, rows: PredictionRows, checkpoints: dict[tuple[str, int], Checkpoint]) -> None:
        """Window one event's rows of a version, noting what changed in the version's checkpoint."""
        key = (rows.model_name, rows.model_version)
        version = self._version(*key)
        state, profile = version.state, version.profile
        outcome = state.assembler.add(rows.to_columns(profile if profile.features else None))
        state.records_seen += len(rows)
        state.digest = rows.digest or state.digest
        state.late_records += outcome.late_events
        checkpoint = checkpoints.setdefault(key, Checkpoint(state, profile))
        checkpoint.profile = profile  # (the version may have adopted its reference data since)
        checkpoint.appended += outcome.appended
        checkpoint.closed += version.dropped
        checkpoint.pending += pending_predictions(rows, self.policy.performance)
        slots, counts = np.unique(
            np.floor(np.asarray(rows.event_time) / self.policy.window.max_seconds).astype(np.int64), return_counts=True
        )
        for slot, count in zip(slots.tolist(), counts.tolist(), strict=True):
            checkpoint.slot_counts[slot] = checkpoint.slot_counts.get(slot, 0) + count
        version.dropped = []
        self._trace_windows(version, rows, outcome.appended, outcome.sources)
        for window in outcome.closed:
            with self._window_span(version, window) as span:
                state.windows_closed += 1
                state.records_per_second = len(window.data) / window.duration(self.policy.window)
                report, outcomes = evaluate_window(profile, window, self.policy, state.cusum)
                performance = performance_outcome(state, profile, window)
                if performance is not None:
                    outcomes.append(performance)
                checkpoint.closed.append(window.id)
                checkpoint.reports.append(report)
                changes = [c for o in outcomes if (c := state.book.observe(o, str(window.id))) is not None]
                checkpoint.changes += changes
                if span.is_recording():
                    span.set_attribute("modelyard.incident_changes", len(changes))
                    # The alerts this window raised are created in this context: their sends are its children.
                    propagate.inject(checkpoint.window_traces.setdefault(str(window.id), {}))

    def _trace_windows(
        self,
        version: _Version,
        rows: PredictionRows,
        appended: Sequence[tuple[WindowId, Columns]],
        sources: Sequence[npt.NDArray[np.int64]],
    ) -> None:
        """Note, per window this batch filled, the batch's span and the first records' trace contexts."""
        batch = trace.get_current_span().get_span_context()  # the consumer's span for this event
        traced = any(rows.traceparents)
        if not batch.is_valid and not traced:
            return
        for (window_id, _), window_rows in zip(appended, sources, strict=True):
            window_trace = version.traces.get(window_id)
            if window_trace is None:
                window_trace = version.traces[window_id] = _WindowTrace()
            window_trace.add(batch, rows.traceparents if traced else [], window_rows if traced else _NO_ROWS)

    def _window_span(self, version: _Version, window: ClosedWindow) -> AbstractContextManager[trace.Span]:
        """The span of one window's evaluation: a child of the batch that closed it, linked to the other batches
        that filled it and to (the first of) its records' inference spans."""
        window_trace = version.traces.pop(window.id, None) or _WindowTrace()
        parent = trace.get_current_span().get_span_context()
        return self.tracer.start_as_current_span(
            "evaluate window",
            links=window_trace.links(parent),
            attributes={
                "modelyard.model.name": version.state.model_name,
                "modelyard.model.version": version.state.model_version,
                "modelyard.window.id": str(window.id),
                "modelyard.window.closed_by": window.closed_by,
                "modelyard.window.records": len(window.data),
            },
        )

    def _version(self, model_name: str, model_version: int) -> _Version:
        version = self._versions.get((model_name, model_version))
        if version is None:
            version = self._versions[(model_name, model_version)] = self._load(model_name, model_version)
        elif not version.profile.features and time.monotonic() - version.reference_checked_at > REFERENCE_RETRY_S:
            self._adopt_reference(version)
        return version

    def _load(self, model_name: str, model_version: int) -> _Version:
        state = self.store.load_state(model_name, model_version) or VersionState.new(
            model_name, model_version, self.policy
        )
        profile = self.store.active_profile(model_name, model_version)
        version = _Version(state, profile or ReferenceProfile.empty(model_name, model_version), time.monotonic())
        if profile is None:
            self._adopt_reference(version)
        return version

    def _adopt_reference(self, version: _Version) -> None:
        """Profile the reference data the first time it is there; until then only operations are monitored."""
        state = version.state
        version.reference_checked_at = time.monotonic()
        try:
            profile = self._build_profile(state.model_name, state.model_version)
        except (ReferenceNotFound, InvalidArgument):  # a name the registry refuses has no reference either
            log.warning("no reference data for %s/%d: operations only", state.model_name, state.model_version)
            return
        except ReferenceUnavailable as exc:
            # Asked again after REFERENCE_RETRY_S: a registry that is away must not dead-letter the predictions.
            log.warning(
                "reference data for %s/%d unavailable (%s): operations only for now",
                state.model_name,
                state.model_version,
                exc,
            )
            return
        self.store.save_profile(profile)
        version.profile = profile
        version.drop_open_windows()  # collected without the features the new profile tests

    def _build_profile(self, model_name: str, model_version: int) -> ReferenceProfile:
        data = self.references.load(model_name, model_version)
        return build_profile(model_name, model_version, data.columns, source=data.source, options=self.profile_options)
