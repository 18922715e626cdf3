"""Kafka entrypoint: prediction batches decoded into per-version rows and handed to the monitor."""

from __future__ import annotations

from modelyard.contracts.events.v1 import monitor_events_pb2, serving_events_pb2
from modelyard.events.envelope import Event
from modelyard.kafka.consumer import PermanentError
from modelyard.monitor.domain.profile import Role
from modelyard.monitor.domain.records import PredictionRows, TensorRows
from modelyard.monitor.handlers import Monitor


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
                column.numbers.append(list(tensor.values))
                strings = tensor.strings
                column.strings.append(list(strings) if strings else _NO_STRINGS)
    return list(grouped.values())


_NO_STRINGS: list[str] = []  # shared by every numeric tensor: never mutated


class PredictionsConsumer:
    """The blocking handler the consumer runs in a worker thread (`cpu_bound=True`)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def __call__(self, event: Event) -> None:
        assert isinstance(event.payload, serving_events_pb2.PredictionBatch)
        self.monitor.handle_predictions(event.id, rows_by_version(event.payload, event.time.timestamp()))


class FeedbackConsumer:
    """Ground truth from the feedback topic, joined with the predictions it is about."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def __call__(self, event: Event) -> None:
        feedback = event.payload
        assert isinstance(feedback, monitor_events_pb2.FeedbackReceived)
        kind = feedback.WhichOneof("truth")
        if kind is None or not feedback.request_id:
            raise PermanentError("feedback without a request id or a label or target")
        truth: str | float = feedback.label if kind == "label" else feedback.target
        self.monitor.handle_feedback(event.id, feedback.request_id, truth)
