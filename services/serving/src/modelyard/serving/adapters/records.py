"""Predictions to PredictionBatches (the columnar format of `modelyard.events.columns`), within the policy's caps.

A record is capped (request id, then tensors) and batches are cut by bytes, so that no batch can exceed the
broker's message limit: one oversized request must not stop the stream for every model. Each batch holds one model
version's records, each tensor as one typed column, built once through the message API: the per-record work is
a few list appends, the per-tensor work one numpy concatenation per batch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from modelyard.contracts.events.v1 import common_pb2, serving_events_pb2
from modelyard.events.columns import TEXT, set_per_record, write_column
from modelyard.serving.domain.model import VersionRef
from modelyard.serving.domain.ports import StreamMetrics
from modelyard.serving.domain.stream import Cut, Dropped, Prediction, RateLimitedLog
from modelyard.serving.domain.tensors import Array, datatype_of


@dataclass(frozen=True, slots=True)
class RecordPolicy:
    """How much of a prediction its record carries, and how many bytes a batch (one Kafka message) may hold.

    Tensors above `max_values` are sampled and truncated; a request id is cut to `max_request_id_bytes`; a record
    still above `max_record_bytes` loses its tensors (and is dropped if that is not enough); batches are cut so
    that their payload stays under `max_batch_bytes`.
    """

    max_values: int = 1024
    large_sample_rate: float = 0.1
    max_request_id_bytes: int = 128
    max_record_bytes: int = 128 * 1024
    max_batch_bytes: int = 512 * 1024


def version_ref_message(ref: VersionRef) -> common_pb2.ModelVersionRef:
    return common_pb2.ModelVersionRef(model_name=ref.model, version=ref.version, digest=ref.digest)


class RecordEncoder:
    """Turns predictions into PredictionBatches within the policy's caps; what it cuts or drops is counted and
    logged at most every 10 s (without the request id: it may be the very thing that was too large)."""

    def __init__(self, policy: RecordPolicy, metrics: StreamMetrics) -> None:
        self.policy = policy
        self._metrics = metrics
        self._cut_log = RateLimitedLog()

    def batches(self, predictions: Sequence[Prediction]) -> list[serving_events_pb2.PredictionBatch]:
        """PredictionBatches of one model version each, records in arrival order (a version's batches too), each
        batch's payload at most `max_batch_bytes` (a lone record above it, possible only when the caps are set so,
        goes alone)."""
        full: list[_Batch] = []
        open_batches: dict[VersionRef, _Batch] = {}
        for prediction in predictions:
            record = self._record(prediction)
            if record is None:
                continue
            ref = prediction.ref
            batch = open_batches.get(ref)
            if batch is None:
                batch = open_batches[ref] = _Batch(ref)
            elif batch.size + batch.growth(record) > self.policy.max_batch_bytes:
                full.append(batch)
                batch = open_batches[ref] = _Batch(ref)
            batch.add(prediction, record)
        return [batch.message() for batch in full + list(open_batches.values())]

    def _record(self, prediction: Prediction) -> _Record | None:
        policy, model = self.policy, prediction.ref.model
        request_id = prediction.request_id
        encoded = request_id.encode()
        if len(encoded) > policy.max_request_id_bytes:
            self._cut(model, Cut.REQUEST_ID, len(encoded), policy.max_request_id_bytes)
            request_id = _utf8_prefix(encoded, policy.max_request_id_bytes).decode()
        record = _Record(request_id, _RECORD_BYTES + len(request_id.encode()) + len(prediction.traceparent))
        outputs = zip(prediction.output_names, prediction.outputs, strict=True)
        for role, named in ((_INPUT, prediction.inputs.items()), (_OUTPUT, outputs)):
            for name, array in named:
                record.add(role, name, array, policy)
        if record.size <= policy.max_record_bytes:
            return record
        size = record.size
        record.drop_values()
        if record.size <= policy.max_record_bytes:
            self._cut(model, Cut.TENSORS, size, policy.max_record_bytes)
            return record
        self._metrics.dropped(model, Dropped.RECORD_TOO_LARGE)
        self._cut_log.warning(
            "prediction stream: a record of %s is %d bytes even without tensors (cap %d): dropped",
            model,
            record.size,
            policy.max_record_bytes,
        )
        return None

    def _cut(self, model: str, what: Cut, size: int, cap: int) -> None:
        self._metrics.truncated(model, what)
        self._cut_log.warning("prediction stream: %s of a record of %s cut (%d bytes, cap %d)", what, model, size, cap)


# Upper bounds of the wire bytes a record adds: its fixed-width fields and the keys and lengths of its strings; a
# tensor's shape, count and per-string keys; a column's name, datatype and field keys (charged once per batch).
_RECORD_BYTES = 8 + 8 + 4 + 2 * 6
_TENSOR_BYTES = 8
_STRING_BYTES = 6
_COLUMN_BYTES = 64
_INPUT, _OUTPUT = 0, 1


@dataclass(slots=True)
class _Tensor:
    shape: tuple[int, ...]
    values: Array | list[str]  # flattened, possibly cut or empty (sampled out, or the record lost its tensors)
    datatype: str
    size: int  # an upper bound of the values' wire bytes


@dataclass(slots=True)
class _Record:
    """What a prediction's record will carry, and an upper bound of its size in the batch."""

    request_id: str
    size: int
    tensors: dict[tuple[int, str], _Tensor] = field(default_factory=dict)

    def add(self, role: int, name: str, array: Array, policy: RecordPolicy) -> None:
        flat = array.ravel()
        if flat.size > policy.max_values:
            flat = flat[: policy.max_values] if random.random() < policy.large_sample_rate else flat[:0]
        if flat.dtype.kind in "OSU":
            texts = [_text(e) for e in flat.tolist()]
            tensor = _Tensor(array.shape, texts, TEXT, sum(len(t.encode()) + _STRING_BYTES for t in texts))
        else:
            tensor = _Tensor(array.shape, flat, datatype_of(flat), flat.nbytes)
        self.tensors[role, name] = tensor
        self.size += _TENSOR_BYTES + 8 * array.ndim + tensor.size

    def drop_values(self) -> None:
        for tensor in self.tensors.values():
            self.size -= tensor.size
            tensor.values, tensor.size = tensor.values[:0], 0


class _Batch:
    """One version's records being gathered, column by column, and an upper bound of its payload's size."""

    def __init__(self, ref: VersionRef) -> None:
        self.ref = ref
        self.size = 16 + 2 * len(ref.model.encode()) + len(ref.digest) + 16
        self.request_ids: list[str] = []
        self.times_ns: list[int] = []
        self.latency_ms: list[float] = []
        self.status: list[int] = []
        self.traceparents: list[str] = []
        self.plan_revisions: list[int] = []
        self.columns: dict[tuple[int, str], list[tuple[int, _Tensor]]] = {}  # each tensor's (record, values)

    def growth(self, record: _Record) -> int:
        new = [key for key in record.tensors if key not in self.columns]
        return record.size + sum(_COLUMN_BYTES + len(name.encode()) for _, name in new)

    def add(self, prediction: Prediction, record: _Record) -> None:
        self.size += self.growth(record)
        index = len(self.request_ids)
        self.request_ids.append(record.request_id)
        self.times_ns.append(prediction.time_ns)
        self.latency_ms.append(prediction.latency_s * 1000.0)
        self.status.append(prediction.status_code)
        self.traceparents.append(prediction.traceparent)
        self.plan_revisions.append(prediction.plan_revision)
        for key, tensor in record.tensors.items():
            self.columns.setdefault(key, []).append((index, tensor))

    def message(self) -> serving_events_pb2.PredictionBatch:
        columns: tuple[list[serving_events_pb2.TensorColumn], ...] = ([], [])
        for (role, name), entries in self.columns.items():
            columns[role].append(self._column(name, entries))
        batch = serving_events_pb2.PredictionBatch(
            model_name=self.ref.model,
            version=version_ref_message(self.ref),
            request_ids=self.request_ids,
            traceparents=self.traceparents if any(self.traceparents) else [],
            inputs=columns[_INPUT],
            outputs=columns[_OUTPUT],
        )
        return set_per_record(batch, self.times_ns, self.latency_ms, self.status, self.plan_revisions)

    def _column(self, name: str, entries: list[tuple[int, _Tensor]]) -> serving_events_pb2.TensorColumn:
        """The column of one tensor: records that lack it hold no elements (shape all zeros)."""
        n = len(self.request_ids)
        shapes: list[tuple[int, ...]] = [()] * n
        parts: list[Array | list[str]] = [_NO_VALUES] * n
        texts = any(tensor.datatype == TEXT for _, tensor in entries)
        # One column, one datatype: that of every record's values together (text if any record sent text).
        datatype = TEXT if texts else datatype_of(np.empty(0, np.result_type(*{t.values.dtype for _, t in entries})))  # type: ignore[union-attr]
        for index, tensor in entries:
            shapes[index] = tensor.shape
            values = tensor.values
            if texts and not isinstance(values, list):
                values = [_text(e) for e in values.tolist()]
            parts[index] = values
        return write_column(name, datatype, shapes, parts)


_NO_VALUES: list[str] = []


def _utf8_prefix(data: bytes, limit: int) -> bytes:
    """The longest prefix of UTF-8 `data` within `limit` bytes that does not split a character."""
    return data[:limit].decode(errors="ignore").encode()


def _text(element: object) -> str:
    return element.decode(errors="replace") if isinstance(element, bytes) else str(element)
