"""Kafka entrypoint: prediction batches decoded into per-version rows (numpy views of their columns) and handed to
the monitor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modelyard.contracts.events.v1 import monitor_events_pb2, registry_events_pb2, serving_events_pb2
from modelyard.events.columns import read_batch
from modelyard.events.envelope import Event
from modelyard.kafka.consumer import Delivery, PermanentError
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
        self.monitor.handle_feedback([Consumed(d.position, _feedback(d.event), d.span) for d in deliveries])


def _feedback(event: Event) -> Feedback:
    feedback = event.payload
    assert isinstance(feedback, monitor_events_pb2.FeedbackReceived)
    kind = feedback.WhichOneof("truth")
    if kind is None or not feedback.request_id:
        raise PermanentError("feedback without a request id or a label or target")
    return Feedback(feedback.request_id, feedback.label if kind == "label" else feedback.target)


class ReadyVersionsConsumer:
    """Registry events: a version whose registration checks passed gets its reference profiled ahead of its traffic."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def __call__(self, event: Event) -> None:
        changed = event.payload
        assert isinstance(changed, registry_events_pb2.ModelVersionStatusChanged)
        if changed.status == registry_events_pb2.MODEL_VERSION_STATUS_READY:
            self.monitor.prefetch(changed.version.model_name, changed.version.version)
