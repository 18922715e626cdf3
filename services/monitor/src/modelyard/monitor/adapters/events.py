"""Domain incident changes as `IncidentChanged` events (and evidence as protobuf), for the alerts topic; labels from
the feedback APIs as `FeedbackReceived` (one) and `FeedbackBatch` (bulk) events, for the feedback topic."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from modelyard.contracts.events.v1 import common_pb2, monitor_events_pb2
from modelyard.events.envelope import Event
from modelyard.inputs import BadInput, capped
from modelyard.monitor.domain.incidents import Change, Evidence, IncidentChange, Severity, Signal
from modelyard.monitor.domain.snapshot import Snapshot

SOURCE = "monitor"
# Widths of the store's columns that keep feedback until its prediction arrives (pending_predictions).
MAX_REQUEST_ID_CHARS = 128
MAX_NAME_CHARS = 255
MAX_LABEL_CHARS = 255
# A FeedbackBatch event holds at most this many labels, and about this many bytes of them.
FEEDBACK_BATCH_LABELS = 5000
FEEDBACK_BATCH_BYTES = 512 * 1024

RETRAINING_NAMESPACE = uuid.UUID("0b8f6c1e-7d43-4b5e-9a51-2f7e3c9d1a64")  # event ids of RetrainingSuggested

SIGNALS = {
    Signal.DATA_DRIFT: monitor_events_pb2.SIGNAL_DATA_DRIFT,
    Signal.PREDICTION_DRIFT: monitor_events_pb2.SIGNAL_PREDICTION_DRIFT,
    Signal.PERFORMANCE: monitor_events_pb2.SIGNAL_PERFORMANCE,
    Signal.DATA_QUALITY: monitor_events_pb2.SIGNAL_DATA_QUALITY,
    Signal.LATENCY: monitor_events_pb2.SIGNAL_LATENCY,
    Signal.ERROR_RATE: monitor_events_pb2.SIGNAL_ERROR_RATE,
}
SEVERITIES = {
    Severity.INFO: monitor_events_pb2.SEVERITY_INFO,
    Severity.WARNING: monitor_events_pb2.SEVERITY_WARNING,
    Severity.CRITICAL: monitor_events_pb2.SEVERITY_CRITICAL,
}
_STATES = {
    Change.OPENED: monitor_events_pb2.IncidentChanged.STATE_OPENED,
    Change.UPDATED: monitor_events_pb2.IncidentChanged.STATE_UPDATED,
    Change.RESOLVED: monitor_events_pb2.IncidentChanged.STATE_RESOLVED,
}


def timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def evidence_message(e: Evidence) -> monitor_events_pb2.Evidence:
    return monitor_events_pb2.Evidence(
        feature=e.feature,
        statistic=e.statistic,
        value=e.value,
        p_value=e.p_value,
        threshold=e.threshold,
        effect_size=e.effect_size,
        n_reference=e.n_reference,
        n_current=e.n_current,
        window_start=timestamp(e.window_start),
        window_end=timestamp(e.window_end),
    )


def incident_event(
    change: IncidentChange,
    digest: str,
    reference_id: str,
    config_hash: str,
    trace: Mapping[str, str] | None = None,
) -> Event:
    """The event for one incident change; its id is the change's, so a replayed change is a duplicate.

    `trace` is the W3C context of the span that evaluated the window behind the change, so the alert's send (relayed
    from the outbox later) is that span's child, and through its links tied to the predictions it judged.
    """
    key = change.key
    payload = monitor_events_pb2.IncidentChanged(
        incident_id=change.incident_id,
        state=_STATES[change.change],
        version=common_pb2.ModelVersionRef(model_name=key.model_name, version=key.model_version, digest=digest),
        signal=SIGNALS[key.signal],
        severity=SEVERITIES[change.severity],
        evidence=[evidence_message(e) for e in change.evidence],
        reference_id=reference_id,
        config_hash=config_hash,
        feature=key.feature,
        window_id=change.window,
    )
    return Event(key=key.model_name, payload=payload, source=SOURCE, id=change.event_id, trace=dict(trace or {}))


def retraining_event(snapshot: Snapshot, digest: str) -> Event:
    """`RetrainingSuggested` for a registered snapshot; its id derives from the incident (one per incident)."""
    request = snapshot.request
    payload = monitor_events_pb2.RetrainingSuggested(
        incident_id=request.incident_id,
        version=common_pb2.ModelVersionRef(model_name=request.model_name, version=request.model_version),
        signal=SIGNALS[request.signal],
        dataset_digest=digest,
        media_type=snapshot.media_type,
        rows=snapshot.rows,
        columns=snapshot.columns,
        label_column=snapshot.label_column,
        windows=snapshot.windows,
        first_event_time=timestamp(snapshot.first_event_time),
        last_event_time=timestamp(snapshot.last_event_time),
    )
    event_id = str(uuid.uuid5(RETRAINING_NAMESPACE, request.incident_id))
    return Event(key=request.model_name, payload=payload, source=SOURCE, id=event_id)


class Label(NamedTuple):
    """One label as the feedback APIs take it, checked: what `feedback_event` and `feedback_batches` publish."""

    request_id: str
    model_name: str
    truth: str | float
    time_unix_nano: int


def checked_label(request_id: str, model_name: str, truth: str | float, event_time: datetime) -> Label:
    """BadInput when a field is longer than the store keeps or the time is out of range."""
    if isinstance(truth, str):
        truth = capped(truth, "label", MAX_LABEL_CHARS)
    try:
        nanos = Timestamp()
        nanos.FromDatetime(event_time.astimezone(UTC))
    except (ValueError, OverflowError):
        raise BadInput("event_time is not a valid time: years 0001-9999") from None
    return Label(
        capped(request_id, "request_id", MAX_REQUEST_ID_CHARS),
        capped(model_name, "model_name", MAX_NAME_CHARS),
        truth,
        nanos.ToNanoseconds(),
    )


def feedback_event(label: Label) -> Event:
    """Ground truth for one prediction, as the event applications could have produced themselves."""
    payload = monitor_events_pb2.FeedbackReceived(request_id=label.request_id, model_name=label.model_name)
    if isinstance(label.truth, str):
        payload.label = label.truth
    else:
        payload.target = label.truth
    payload.event_time.FromNanoseconds(label.time_unix_nano)
    return Event.new(label.model_name, payload, SOURCE)


def feedback_batches(labels: Sequence[Label]) -> list[Event]:
    """Labels in bulk as `FeedbackBatch` events: one per model and kind of truth (class or number), in the labels'
    order, each at most `FEEDBACK_BATCH_LABELS` labels and about `FEEDBACK_BATCH_BYTES` (under Kafka's default
    1 MB record limit)."""
    groups: dict[tuple[str, bool], list[Label]] = {}
    for label in labels:
        groups.setdefault((label.model_name, isinstance(label.truth, str)), []).append(label)
    events = []
    for (model_name, text), group in groups.items():
        start, size = 0, 0
        for i, label in enumerate(group):
            size += len(label.request_id) + (len(label.truth) if text else 8) + 16  # type: ignore[arg-type]
            if i + 1 == len(group) or i + 1 - start >= FEEDBACK_BATCH_LABELS or size >= FEEDBACK_BATCH_BYTES:
                events.append(_batch_event(model_name, text, group[start : i + 1]))
                start, size = i + 1, 0
    return events


def _batch_event(model_name: str, text: bool, labels: Sequence[Label]) -> Event:
    payload = monitor_events_pb2.FeedbackBatch(
        model_name=model_name,
        request_ids=[x.request_id for x in labels],
        time_unix_nano=np.array([x.time_unix_nano for x in labels], dtype="<i8").tobytes(),
    )
    if text:
        payload.labels.extend([x.truth for x in labels])  # type: ignore[misc]
    else:
        payload.targets = np.array([x.truth for x in labels], dtype="<f8").tobytes()
    return Event.new(model_name, payload, SOURCE)
