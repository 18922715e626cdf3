"""Domain incident changes as `IncidentChanged` events (and evidence as protobuf), for the alerts topic."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

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


def feedback_event(request_id: str, model_name: str, truth: str | float, event_time: datetime) -> Event:
    """Ground truth sent over the API, as the event applications could have produced themselves; BadInput when a
    field is longer than the store keeps or the time is out of range."""
    payload = monitor_events_pb2.FeedbackReceived(
        request_id=capped(request_id, "request_id", MAX_REQUEST_ID_CHARS),
        model_name=capped(model_name, "model_name", MAX_NAME_CHARS),
    )
    if isinstance(truth, str):
        payload.label = capped(truth, "label", MAX_LABEL_CHARS)
    else:
        payload.target = truth
    try:
        payload.event_time.FromDatetime(event_time.astimezone(UTC))
    except (ValueError, OverflowError):
        raise BadInput("event_time is not a valid time: years 0001-9999") from None
    return Event.new(model_name, payload, SOURCE)
