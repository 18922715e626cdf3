"""Kafka entrypoints: prediction batches decoded into per-version rows (numpy views of their columns) and handed to
the monitor, ground truth from feedback, and ready versions from the registry (their references profiled ahead of
traffic). The bootstrap runs each consumer as a background task (`runtime.kit.consume_forever`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modelyard.contracts.events.v1 import monitor_events_pb2, registry_events_pb2, serving_events_pb2
from modelyard.events.columns import read_batch
from modelyard.events.envelope import Event
from modelyard.events.topics import MONITOR_FEEDBACK, REGISTRY_EVENTS, SERVING_PREDICTIONS
from modelyard.kafka.consumer import Delivery, EventConsumer, PermanentError
from modelyard.monitor.config import MonitorSettings
from modelyard.monitor.domain.ports import Consumed
from modelyard.monitor.domain.profile import Role
from modelyard.monitor.domain.records import Feedback, PredictionRows, TensorRows
from modelyard.monitor.handlers import Monitor


def rows_by_version(batch: serving_events_pb2.PredictionBatch, fallback_time: float) -> list[PredictionRows]:
    """The batch's records (of one model version) with their tensors as numpy views of the payload's columns; a
    batch whose columns disagree with its record count is a PermanentError (dead-lettered with the reason)."""
    try:
        records = read_batch(batch)
    except ValueError as exc:
        raise PermanentError(f"undecodable prediction batch: {exc}") from exc
    ref = batch.version
    times = records.time_unix_nano
    event_time = np.where(times != 0, times * 1e-9, fallback_time)
    rows = PredictionRows(
        ref.model_name or batch.model_name,
        ref.version,
        ref.digest,
        records.request_ids,
        event_time,
        records.latency_ms.astype(np.float64),
        records.status_codes,
        records.traceparents,
        records.plan_revisions,
    )
    for role, columns in ((Role.INPUT, records.inputs), (Role.OUTPUT, records.outputs)):
        for column in columns:
            rows.tensors[role, column.name] = TensorRows(column.values, column.counts)
    return [rows]


class PredictionsConsumer:
    """The batch handler of prediction events (run in a worker thread)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def __call__(self, deliveries: Sequence[Delivery]) -> None:
        self.monitor.handle_predictions([Consumed(d.position, _rows(d.event), d.span) for d in deliveries])


def _rows(event: Event) -> list[PredictionRows]:
    assert isinstance(event.payload, serving_events_pb2.PredictionBatch)
    return rows_by_version(event.payload, event.time.timestamp())


class FeedbackConsumer:
    """Ground truth from the feedback topic, joined with the predictions it is about."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def __call__(self, deliveries: Sequence[Delivery]) -> None:
        self.monitor.handle_feedback([Consumed(d.position, feedback_of(d.event), d.span) for d in deliveries])


def feedback_of(event: Event) -> Feedback:
    """The labels of a `FeedbackReceived` or a `FeedbackBatch`; PermanentError (dead-lettered with the reason) when
    one lacks a request id or a truth, or a batch's columns disagree with its request ids."""
    feedback = event.payload
    if isinstance(feedback, monitor_events_pb2.FeedbackBatch):
        return _batch(feedback)
    assert isinstance(feedback, monitor_events_pb2.FeedbackReceived)
    kind = feedback.WhichOneof("truth")
    if kind is None or not feedback.request_id:
        raise PermanentError("feedback without a request id or a label or target")
    return Feedback([feedback.request_id], [feedback.label] if kind == "label" else [feedback.target])


def _batch(batch: monitor_events_pb2.FeedbackBatch) -> Feedback:
    request_ids = list(batch.request_ids)
    n = len(request_ids)
    if not n or not all(request_ids):
        raise PermanentError("feedback batch without labels, or with an empty request id")
    if len(batch.time_unix_nano) not in (0, 8 * n):
        raise PermanentError(f"feedback batch: time_unix_nano holds {len(batch.time_unix_nano)} bytes, not 8 x {n}")
    if len(batch.labels) == n and not batch.targets:
        return Feedback(request_ids, list(batch.labels))
    if len(batch.targets) == 8 * n and not batch.labels:
        return Feedback(request_ids, np.frombuffer(batch.targets, dtype="<f8").tolist())
    raise PermanentError(
        f"feedback batch of {n} request ids: {len(batch.labels)} labels and {len(batch.targets) // 8} targets "
        "(exactly one of them must have one per request id)"
    )


class ReadyVersionsConsumer:
    """Registry events: a version whose registration checks passed gets its reference profiled ahead of its traffic."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def __call__(self, event: Event) -> None:
        changed = event.payload
        assert isinstance(changed, registry_events_pb2.ModelVersionStatusChanged)
        if changed.status == registry_events_pb2.MODEL_VERSION_STATUS_READY:
            self.monitor.prefetch(changed.version.model_name, changed.version.version)


def predictions_consumer(settings: MonitorSettings, monitor: Monitor) -> EventConsumer:
    """Predictions and feedback, in batches; window state is checkpointed with the offsets it covers, so the
    consumer resumes from those (`positions`)."""
    consumer = EventConsumer.from_settings(
        settings,
        settings.consumer_group,
        [SERVING_PREDICTIONS, MONITOR_FEEDBACK],
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=max(100, settings.consumer_session_timeout_ms // 10),
        positions=monitor,
        max_records=settings.consumer_max_records,
        max_partition_fetch_bytes=settings.consumer_max_partition_fetch_bytes,
    )
    consumer.register_batch(serving_events_pb2.PredictionBatch, PredictionsConsumer(monitor))
    consumer.register_batch(monitor_events_pb2.FeedbackReceived, FeedbackConsumer(monitor))
    consumer.register_batch(monitor_events_pb2.FeedbackBatch, FeedbackConsumer(monitor))
    return consumer


def references_consumer(settings: MonitorSettings, monitor: Monitor) -> EventConsumer:
    """A group of its own, from the latest event on its first start: versions made ready from then on are profiled
    before their traffic; older ones are profiled when their first predictions arrive."""
    consumer = EventConsumer.from_settings(
        settings, f"{settings.consumer_group}.references", [REGISTRY_EVENTS], auto_offset_reset="latest"
    )
    consumer.register(registry_events_pb2.ModelVersionStatusChanged, ReadyVersionsConsumer(monitor), cpu_bound=True)
    return consumer
