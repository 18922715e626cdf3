"""Kafka entrypoints: prediction batches decoded into per-version rows and handed to the monitor, ground truth from
feedback, and ready versions from the registry (their references profiled ahead of traffic). The bootstrap runs
each consumer as a background task (`runtime.kit.consume_forever`)."""

from __future__ import annotations

from collections.abc import Sequence

from modelyard.contracts.events.v1 import monitor_events_pb2, registry_events_pb2, serving_events_pb2
from modelyard.events.envelope import Event
from modelyard.events.topics import MONITOR_FEEDBACK, REGISTRY_EVENTS, SERVING_PREDICTIONS
from modelyard.kafka.consumer import Delivery, EventConsumer, PermanentError
from modelyard.monitor.config import MonitorSettings
from modelyard.monitor.domain.ports import Consumed
from modelyard.monitor.domain.profile import Role
from modelyard.monitor.domain.records import Feedback, PredictionRows, TensorRows
from modelyard.monitor.handlers import Monitor


def rows_by_version(batch: serving_events_pb2.PredictionBatch, fallback_time: float) -> list[PredictionRows]:
    """The batch's records grouped by model version, tensors kept as flattened values per record.

    One pass over the records (the only per-record Python loop of the hot path), so it avoids every lookup it can:
    tensors are found by name in a dict per version and role, and a tensor entry is numbers or strings, never both.
    """
    grouped: dict[tuple[str, int], tuple[PredictionRows, dict[str, TensorRows], dict[str, TensorRows]]] = {}
    default_model = batch.model_name
    for record in batch.records:
        ref = record.version
        key = (ref.model_name or default_model, ref.version)
        group = grouped.get(key)
        if group is None:
            group = grouped[key] = (PredictionRows(key[0], key[1], ref.digest), {}, {})
        rows = group[0]
        index = len(rows.event_time)
        rows.request_ids.append(record.request_id)
        stamp = record.timestamp
        seconds, nanos = stamp.seconds, stamp.nanos
        rows.event_time.append(seconds + nanos * 1e-9 if seconds or nanos else fallback_time)
        rows.latency_ms.append(record.latency_ms)
        rows.status.append(record.status_code)
        rows.traceparents.append(record.traceparent)
        rows.plan_revisions.append(record.plan_revision)
        for role, by_name, message_tensors in (
            (Role.INPUT, group[1], record.inputs),
            (Role.OUTPUT, group[2], record.outputs),
        ):
            for tensor in message_tensors:
                name = tensor.name
                column = by_name.get(name)
                if column is None:
                    column = by_name[name] = rows.tensors[(role, name)] = TensorRows()
                column.rows.append(index)
                values = tensor.values
                if values:
                    column.numbers += values
                    column.number_widths.append(len(values))
                    column.string_widths.append(0)
                else:
                    strings = tensor.strings
                    column.strings += strings
                    column.string_widths.append(len(strings))
                    column.number_widths.append(0)
    return [group[0] for group in grouped.values()]


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
    return consumer


def references_consumer(settings: MonitorSettings, monitor: Monitor) -> EventConsumer:
    """A group of its own, from the latest event on its first start: versions made ready from then on are profiled
    before their traffic; older ones are profiled when their first predictions arrive."""
    consumer = EventConsumer.from_settings(
        settings, f"{settings.consumer_group}.references", [REGISTRY_EVENTS], auto_offset_reset="latest"
    )
    consumer.register(registry_events_pb2.ModelVersionStatusChanged, ReadyVersionsConsumer(monitor), cpu_bound=True)
    return consumer
