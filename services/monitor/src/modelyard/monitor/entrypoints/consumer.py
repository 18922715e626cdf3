"""Kafka entrypoint: prediction batches decoded into per-version rows and handed to the monitor."""

from __future__ import annotations

from collections.abc import Sequence

from modelyard.contracts.events.v1 import monitor_events_pb2, serving_events_pb2
from modelyard.events.envelope import Event
from modelyard.kafka.consumer import Delivery, PermanentError
from modelyard.monitor.domain.profile import Role
from modelyard.monitor.domain.records import PredictionRows, TensorRows
from modelyard.monitor.handlers import Consumed, Feedback, Monitor


def rows_by_version(batch: serving_events_pb2.PredictionBatch, fallback_time: float) -> list[PredictionRows]:
    """The batch's records grouped by model version, tensors kept as flattened values per record.

    One pass over the records (the only per-record Python loop of the hot path), so it avoids every lookup it can.
    """
    grouped: dict[tuple[str, int], PredictionRows] = {}
    default_model = batch.model_name
    for record in batch.records:
        ref = record.version
        key = (ref.model_name or default_model, ref.version)
        rows = grouped.get(key)
        if rows is None:
            rows = grouped[key] = PredictionRows(key[0], key[1], ref.digest)
        index = len(rows.event_time)
        rows.request_ids.append(record.request_id)
        stamp = record.timestamp
        seconds, nanos = stamp.seconds, stamp.nanos
        rows.event_time.append(seconds + nanos * 1e-9 if seconds or nanos else fallback_time)
        rows.latency_ms.append(record.latency_ms)
        rows.status.append(record.status_code)
        rows.traceparents.append(record.traceparent)
        tensors = rows.tensors
        for role, message_tensors in ((Role.INPUT, record.inputs), (Role.OUTPUT, record.outputs)):
            for tensor in message_tensors:
                column = tensors.get((role, tensor.name))
                if column is None:
                    column = tensors[(role, tensor.name)] = TensorRows()
                column.rows.append(index)
                values, strings = tensor.values, tensor.strings
                column.numbers += values
                column.number_widths.append(len(values))
                column.strings += strings
                column.string_widths.append(len(strings))
    return list(grouped.values())


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
