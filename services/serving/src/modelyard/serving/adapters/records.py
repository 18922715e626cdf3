"""The prediction record's wire format: predictions to PredictionBatch payloads, within the policy's caps.

A record is capped (request id, then tensors) and batches are cut by bytes, so that no batch can exceed the
broker's message limit: one oversized request must not stop the stream for every model.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from modelyard.contracts.events.v1 import common_pb2, serving_events_pb2
from modelyard.serving.domain.model import VersionRef
from modelyard.serving.domain.ports import StreamMetrics
from modelyard.serving.domain.stream import Cut, Dropped, Prediction, RateLimitedLog
from modelyard.serving.domain.tensors import Array


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
        """PredictionBatches of one model each, records in arrival order (a model's batches too), each batch's
        payload at most `max_batch_bytes` (a lone record above it, possible only when the caps are set so, goes
        alone).

        Records are written straight in protobuf wire format and parsed once per batch: building them field by
        field through the Python message API cost several times the inference of a small model, per prediction.
        """
        full: list[bytes] = []
        open_batches: dict[str, _Batch] = {}
        refs: dict[VersionRef, bytes] = {}
        for prediction in predictions:
            ref = prediction.ref
            ref_bytes = refs.get(ref)
            if ref_bytes is None:
                ref_bytes = refs[ref] = version_ref_message(ref).SerializeToString()
            record = self._record(prediction, ref_bytes)
            if record is None:
                continue
            field = _field(_RECORDS, record)
            batch = open_batches.get(ref.model)
            if batch is None:
                batch = open_batches[ref.model] = _Batch(ref.model)
            elif batch.size + len(field) > self.policy.max_batch_bytes:
                full.append(batch.payload())
                batch = open_batches[ref.model] = _Batch(ref.model)
            batch.add(field)
        full += [batch.payload() for batch in open_batches.values()]
        return [serving_events_pb2.PredictionBatch.FromString(payload) for payload in full]

    def _record(self, prediction: Prediction, version: bytes) -> bytes | None:
        policy, model = self.policy, prediction.ref.model
        request_id = prediction.request_id.encode()
        if len(request_id) > policy.max_request_id_bytes:
            self._cut(model, Cut.REQUEST_ID, len(request_id), policy.max_request_id_bytes)
            request_id = _utf8_prefix(request_id, policy.max_request_id_bytes)
        record = encode_record(prediction, request_id, version, policy)
        if len(record) <= policy.max_record_bytes:
            return record
        size = len(record)
        record = encode_record(prediction, request_id, version, policy, tensors=False)
        if len(record) <= policy.max_record_bytes:
            self._cut(model, Cut.TENSORS, size, policy.max_record_bytes)
            return record
        self._metrics.dropped(model, Dropped.RECORD_TOO_LARGE)
        self._cut_log.warning(
            "prediction stream: a record of %s is %d bytes even without tensors (cap %d): dropped",
            model,
            len(record),
            policy.max_record_bytes,
        )
        return None

    def _cut(self, model: str, what: Cut, size: int, cap: int) -> None:
        self._metrics.truncated(model, what)
        self._cut_log.warning("prediction stream: %s of a record of %s cut (%d bytes, cap %d)", what, model, size, cap)


class _Batch:
    """The wire format of one PredictionBatch being filled, and its size so far."""

    def __init__(self, model: str) -> None:
        self.parts = [_field(_MODEL_NAME, model.encode())]
        self.size = len(self.parts[0])

    def add(self, record_field: bytes) -> None:
        self.parts.append(record_field)
        self.size += len(record_field)

    def payload(self) -> bytes:
        return b"".join(self.parts)


def _utf8_prefix(data: bytes, limit: int) -> bytes:
    """The longest prefix of UTF-8 `data` within `limit` bytes that does not split a character."""
    return data[:limit].decode(errors="ignore").encode()


# Field keys (field number << 3 | wire type) of PredictionBatch, PredictionRecord, PredictionTensor, Timestamp.
_MODEL_NAME, _RECORDS = b"\x0a", b"\x12"
_REQUEST_ID, _VERSION, _TIMESTAMP, _INPUTS, _OUTPUTS, _LATENCY, _STATUS, _TRACEPARENT, _PLAN_REVISION = (
    b"\x0a",
    b"\x12",
    b"\x1a",
    b"\x22",
    b"\x2a",
    b"\x31",
    b"\x38",
    b"\x42",
    b"\x48",
)
_NAME, _SHAPE, _VALUES, _STRINGS, _TRUNCATED = b"\x0a", b"\x12", b"\x1a", b"\x22", b"\x28"
_SECONDS, _NANOS = b"\x08", b"\x10"
_DOUBLE = struct.Struct("<d")


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values take ten bytes, as two's complement
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(key: bytes, payload: bytes) -> bytes:
    return key + _varint(len(payload)) + payload


def encode_record(
    prediction: Prediction, request_id: bytes, version: bytes, policy: RecordPolicy, *, tensors: bool = True
) -> bytes:
    """A PredictionRecord in wire format; `version` is its ModelVersionRef, already serialized."""
    seconds, nanos = divmod(prediction.time_ns, 1_000_000_000)
    parts = [
        _field(_REQUEST_ID, request_id),
        _field(_VERSION, version),
        _field(_TIMESTAMP, _SECONDS + _varint(seconds) + _NANOS + _varint(nanos)),
    ]
    if tensors:
        parts += [_field(_INPUTS, t) for t in _tensors(prediction.inputs.items(), policy)]
        outputs = zip(prediction.output_names, prediction.outputs, strict=True)
        parts += [_field(_OUTPUTS, t) for t in _tensors(outputs, policy)]
    parts.append(_LATENCY + _DOUBLE.pack(prediction.latency_s * 1000.0))
    if prediction.status_code:
        parts.append(_STATUS + _varint(prediction.status_code))
    if prediction.traceparent:
        parts.append(_field(_TRACEPARENT, prediction.traceparent.encode()))
    if prediction.plan_revision:
        parts.append(_PLAN_REVISION + _varint(prediction.plan_revision))
    return b"".join(parts)


def _tensors(named: Iterable[tuple[str, Array]], policy: RecordPolicy) -> Iterator[bytes]:
    for name, array in named:
        flat = array.ravel()
        truncated = flat.size > policy.max_values
        if truncated:
            if random.random() >= policy.large_sample_rate:
                continue
            flat = flat[: policy.max_values]
        parts = [_field(_NAME, name.encode()), _field(_SHAPE, b"".join(_varint(d) for d in array.shape))]
        if flat.dtype.kind in "OSU":
            parts += [_field(_STRINGS, _text(e).encode()) for e in flat.tolist()]
        else:
            parts.append(_field(_VALUES, flat.astype("<f8").tobytes()))
        if truncated:
            parts.append(_TRUNCATED + b"\x01")
        yield b"".join(parts)


def _text(element: object) -> str:
    return element.decode(errors="replace") if isinstance(element, bytes) else str(element)
