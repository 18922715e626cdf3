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
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from opentelemetry import propagate, trace

from modelyard.monitor.domain.degradation import observe_errors
from modelyard.monitor.domain.errors import InvalidArgument, ReferenceNotFound, ReferenceUnavailable
from modelyard.monitor.domain.evaluation import WindowReport, evaluate_window
from modelyard.monitor.domain.incidents import IncidentChange
from modelyard.monitor.domain.performance import (
    LabelledPrediction,
    errors_of,
    group_by_version,
    join_labels,
    pending_predictions,
)
from modelyard.monitor.domain.policy import MonitorPolicy
from modelyard.monitor.domain.ports import Checkpoint, Consumed, DatasetRegistry, Metrics, MonitorStore, Partition
from modelyard.monitor.domain.prediction_log import (
    DEFAULT_PREDICTION_LOG,
    PredictionLogPolicy,
    PredictionNotFound,
    PredictionTrace,
    logged_batch,
)
from modelyard.monitor.domain.profile import ReferenceProfile
from modelyard.monitor.domain.records import Feedback, PredictionRows
from modelyard.monitor.domain.snapshot import build_snapshot, feature_rows
from modelyard.monitor.domain.state import VersionState
from modelyard.monitor.domain.views import IncidentView, PerformanceHistory, SnapshotView, VersionStatus
from modelyard.monitor.domain.windows import ClosedWindow, WindowId
from modelyard.monitor.profiles import ReferenceProfiles
from modelyard.monitor.window_traces import WindowTrace, note_batch, window_span

log = logging.getLogger(__name__)

T = TypeVar("T")
Key = tuple[str, int]  # (model name, version)


@dataclass
class _Version:
    state: VersionState
    profile: ReferenceProfile
    dropped: list[WindowId] = field(default_factory=list)  # open windows dropped by a change of reference
    traces: dict[WindowId, WindowTrace] = field(default_factory=dict)  # of the open windows

    def drop_open_windows(self) -> None:
        self.dropped += [w.id for w in self.state.assembler.open.values()]
        self.state.assembler.open.clear()
        self.traces.clear()


class Monitor:
    def __init__(
        self,
        store: MonitorStore,
        profiles: ReferenceProfiles,
        policy: MonitorPolicy,
        metrics: Metrics,
        tracer: trace.Tracer | None = None,
        reference_wait_s: float = 10.0,
        prediction_log: PredictionLogPolicy = DEFAULT_PREDICTION_LOG,
    ) -> None:
        self.store = store
        self.prediction_log = prediction_log
        self.profiles = profiles
        self.policy = policy
        self.metrics = metrics
        self.tracer = tracer or trace.get_tracer(__name__)
        # How long a batch waits (outside the lock) for the first fetch of a version's reference profile.
        self.reference_wait_s = reference_wait_s
        self._versions: dict[tuple[str, int], _Version] = {}
        self._positions: dict[Partition, int] | None = None  # the store's, once read
        self._restored = False  # the stored versions with open windows are in memory (for the idle flush)
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
        self._await_references({(rows.model_name, rows.model_version) for e in events for rows in e.content})
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
        return self._observed(checkpoints)

    def handle_feedback(self, events: Sequence[Consumed[Feedback]]) -> int:
        """Join labels with their predictions and run the versions' performance tests on them; how many joined. A
        label too early (its prediction is not windowed yet) or too late (past the TTL) is counted, not joined."""
        with self._lock:
            fresh = self._fresh(events)
            waiting = self.store.pending_predictions([r for e in fresh for r in e.content.request_ids])
            checkpoints: dict[tuple[str, int], Checkpoint] = {}
            joined = join_labels([e.content for e in fresh], waiting)
            closed_windows: list[tuple[Key, str, float]] = []
            try:
                for key, labelled in group_by_version(joined).items():
                    version = self._version(*key)
                    checkpoint = checkpoints.setdefault(key, Checkpoint(version.state, version.profile))
                    stream = errors_of(labelled, self.policy.performance.positive_label)
                    for closed in observe_errors(
                        version.state,
                        version.profile,
                        stream.errors,
                        stream.times,
                        self.policy,
                        stream.scores,
                        stream.predicted_positive,
                    ):
                        closed_windows.append((key, closed.metric, closed.value))
                        if (change := version.state.book.observe(closed.outcome, closed.window)) is not None:
                            checkpoint.changes.append(change)
                self._checkpoint(fresh, checkpoints, joined)
            except BaseException:
                self._forget()
                raise
        for (model_name, model_version), metric, value in closed_windows:
            self.metrics.observe_performance(model_name, model_version, metric, value)
        self.metrics.observe_changes([c for cp in checkpoints.values() for c in cp.changes])
        return len(joined)

    def prefetch(self, model_name: str, model_version: int) -> None:
        """Profile a version's reference data before its first predictions (the registry says the version is ready),
        unless the monitor has a profile already. Runs on the registry events' consumer, not under the lock."""
        if self.store.active_profile(model_name, model_version) is not None:
            return
        try:
            profile = self.profiles.build(model_name, model_version)
        except (ReferenceNotFound, InvalidArgument):
            return  # operations only; nothing to prefetch
        except ReferenceUnavailable as exc:
            log.warning(
                "prefetching the reference of %s/%d failed (%s): fetched with its traffic",
                model_name,
                model_version,
                exc,
            )
            return
        self.store.save_profile(profile)

    def _await_references(self, keys: Collection[Key]) -> None:
        """Outside the lock: start fetching the reference of each version seen for the first time (or due to be
        asked again) and wait a bounded time for those fetches, so that they are adopted in this batch."""
        missing = []
        for key in keys:
            version = self._versions.get(key)
            if version is not None and version.profile.features:
                continue
            if version is None and self.store.active_profile(*key) is not None:
                continue
            if self.profiles.request(*key) is not None:
                missing.append(key)
        self.profiles.wait(missing, self.reference_wait_s)

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
        self._restored = False

    def statuses(self, model_name: str = "") -> list[VersionStatus]:
        return self.store.statuses(model_name)

    def window_reports(self, model_name: str, model_version: int, limit: int = 100) -> list[WindowReport]:
        return self.store.window_reports(model_name, model_version, limit)

    def performance_windows(self, model_name: str, model_version: int, limit: int = 100) -> PerformanceHistory:
        """Realised performance per window slot, newest first, next to the baseline of the active reference."""
        profile = self.store.active_profile(model_name, model_version)
        windows = self.store.performance_windows(model_name, model_version, limit)
        return PerformanceHistory(dict(profile.baseline) if profile else {}, windows)

    def incident_views(self, model_name: str = "", *, open_only: bool = False, limit: int = 100) -> list[IncidentView]:
        return self.store.incident_views(model_name, open_only=open_only, limit=limit)

    def prediction_trace(self, request_id: str) -> PredictionTrace:
        """One logged prediction, its window and the incidents open then; PredictionNotFound once pruned."""
        found = self.store.prediction_trace(request_id)
        if found is None:
            raise PredictionNotFound(
                f"no prediction with request id {request_id[:128]!r} in the log (never seen, or pruned: the log "
                "keeps predictions for its retention and up to its size cap)"
            )
        return found

    def snapshots(self, model_name: str, limit: int = 100) -> list[SnapshotView]:
        """The model's retraining snapshots, newest first."""
        return self.store.snapshot_views(model_name, limit)

    def rebaseline(self, model_name: str, model_version: int) -> ReferenceProfile:
        """Profile the version's reference data again and make it the reference from the next window on.

        The open windows are dropped (their rows were collected against the old reference); incidents stay open
        until clean windows against the new reference resolve them.
        """
        profile = self.profiles.build(model_name, model_version)
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
        columns = rows.to_columns(profile if profile.features else None)
        outcome = state.assembler.add(columns)
        state.records_seen += len(rows)
        state.digest = rows.digest or state.digest
        state.late_records += outcome.late_events
        checkpoint = checkpoints.setdefault(key, Checkpoint(state, profile))
        checkpoint.profile = profile  # (the version may have adopted its reference data since)
        checkpoint.appended += outcome.appended
        checkpoint.closed += version.dropped
        features = feature_rows(columns, profile) if self.policy.retraining.enabled and profile.features else None
        if (waiting := pending_predictions(rows, self.policy.performance, features)) is not None:
            checkpoint.pending.append(waiting)
        if self.prediction_log.max_rows:
            taken = [(window, sources) for (window, _), sources in zip(outcome.appended, outcome.sources, strict=True)]
            if (logged := logged_batch(rows, taken)) is not None:
                checkpoint.logged.append(logged)
        slots, counts = np.unique(
            np.floor(np.asarray(rows.event_time) / self.policy.window.max_seconds).astype(np.int64), return_counts=True
        )
        for slot, count in zip(slots.tolist(), counts.tolist(), strict=True):
            checkpoint.slot_counts[slot] = checkpoint.slot_counts.get(slot, 0) + count
        version.dropped = []
        note_batch(version.traces, rows, outcome.appended, outcome.sources)
        self._merge(version, outcome.merged, checkpoint)
        self._evaluate(version, outcome.closed, checkpoint)

    @staticmethod
    def _merge(version: _Version, merged: Sequence[tuple[WindowId, WindowId]], checkpoint: Checkpoint) -> None:
        """Slivers moved into the next open window: their traces go with them, and the store re-keys their rows."""
        for sliver, target in merged:
            if (moved := version.traces.pop(sliver, None)) is not None:
                version.traces.setdefault(target, WindowTrace()).absorb(moved)
        checkpoint.merged += merged

    def flush_idle(self, now: float) -> list[IncidentChange]:
        """Close the windows of the versions in memory whose stream went quiet (`WindowAssembler.idle`), as if an
        event had come at `now` (wall clock); the incident changes they caused (already in the outbox)."""
        with self._lock:
            checkpoints: dict[tuple[str, int], Checkpoint] = {}
            try:
                self._restore_open_windows()
                for key, version in self._versions.items():
                    if version.state.assembler.idle(now):
                        outcome = version.state.assembler.advance(now - self.policy.window.allowed_lateness_s)
                        checkpoint = checkpoints[key] = Checkpoint(version.state, version.profile)
                        self._merge(version, outcome.merged, checkpoint)
                        self._evaluate(version, outcome.closed, checkpoint)
                if checkpoints:
                    self.store.checkpoint({}, list(checkpoints.values()), self.policy.config_hash)
            except BaseException:
                self._forget()
                raise
        return self._observed(checkpoints)

    def _observed(self, checkpoints: Mapping[tuple[str, int], Checkpoint]) -> list[IncidentChange]:
        """The checkpointed windows and incident changes, counted in the metrics; the changes."""
        changes = [c for cp in checkpoints.values() for c in cp.changes]
        for cp in checkpoints.values():
            for report in cp.reports:
                self.metrics.observe_window(report)
        self.metrics.observe_changes(changes)
        return changes

    def _evaluate(self, version: _Version, closed: Sequence[ClosedWindow], checkpoint: Checkpoint) -> None:
        state, profile = version.state, version.profile
        for window in closed:
            with window_span(self.tracer, state, version.traces, window) as span:
                state.windows_closed += 1
                state.records_per_second = len(window.data) / window.duration(self.policy.window)
                report, outcomes = evaluate_window(profile, window, self.policy, state.cusum)
                checkpoint.closed.append(window.id)
                checkpoint.reports.append(report)
                changes = [c for o in outcomes if (c := state.book.observe(o, str(window.id))) is not None]
                checkpoint.changes += changes
                if span.is_recording():
                    span.set_attribute("modelyard.incident_changes", len(changes))
                    # The alerts this window raised are created in this context: their sends are its children.
                    propagate.inject(checkpoint.window_traces.setdefault(str(window.id), {}))

    def _version(self, model_name: str, model_version: int) -> _Version:
        """The version's state in memory, with the reference profile it has adopted, if any (under the lock)."""
        version = self._versions.get((model_name, model_version))
        if version is None:
            version = self._versions[(model_name, model_version)] = self._load(model_name, model_version)
        if not version.profile.features and (profile := self.profiles.take(model_name, model_version)) is not None:
            self.store.save_profile(profile)
            version.profile = profile
            version.drop_open_windows()  # collected without the features the new profile tests
        return version

    def _restore_open_windows(self) -> None:
        """Once after a start (or a failed checkpoint): the stored versions with open windows, into memory, so the
        idle flush closes them even when their traffic never comes back (under the lock)."""
        if self._restored:
            return
        for status in self.store.statuses():
            key = (status.model_name, status.model_version)
            if key not in self._versions and (state := self.store.load_state(*key)) and state.assembler.open:
                self._versions[key] = self._load(*key, state)
        self._restored = True

    def _load(self, model_name: str, model_version: int, state: VersionState | None = None) -> _Version:
        state = (
            state
            or self.store.load_state(model_name, model_version)
            or VersionState.new(model_name, model_version, self.policy)
        )
        profile = self.store.active_profile(model_name, model_version)
        return _Version(state, profile or ReferenceProfile.empty(model_name, model_version))


class Retraining:
    """Snapshots of labelled traffic for the incidents the retraining policy names, registered as datasets.

    A pass (`suggest`) runs off the consumers: it takes every open incident of those signals that has no snapshot
    yet, so a registry that was away, a restart, or labels that were still too few are simply met again on the
    next pass; the snapshot row and its `RetrainingSuggested` are written together, once per incident.
    """

    def __init__(self, store: MonitorStore, datasets: DatasetRegistry, policy: MonitorPolicy) -> None:
        self.store = store
        self.datasets = datasets
        self.policy = policy

    def suggest(self) -> list[str]:
        """One pass; the incidents snapshotted in it."""
        retraining = self.policy.retraining
        done = []
        for request in self.store.awaiting_snapshot(retraining.signals):
            labelled = self.store.labelled_traffic(request.model_name, retraining.max_rows)
            snapshot = build_snapshot(request, labelled, self.policy)
            if snapshot is None:
                continue  # too few labels yet: met again on the next pass while the incident is open
            digest = self.datasets.register_dataset(snapshot.data, snapshot.media_type)
            if self.store.save_snapshot(snapshot, digest):
                log.info(
                    "retraining suggested for %s: snapshot %s (%d rows)", request.incident_id, digest, snapshot.rows
                )
                done.append(request.incident_id)
        return done
