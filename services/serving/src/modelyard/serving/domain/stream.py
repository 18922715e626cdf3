"""The prediction stream's buffer and record format.

The request path only appends a `Prediction` (references to arrays it already has) to a bounded buffer; building
protobuf records and publishing happen later, in batches, off the request path. When the buffer is full (the
broker is away and the publisher cannot keep up) new predictions are dropped and counted, never waited for.
"""

from __future__ import annotations

import itertools
import logging
import random
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from modelyard.contracts.events.v1 import common_pb2, serving_events_pb2
from modelyard.serving.domain.codec import Array
from modelyard.serving.domain.model import VersionRef

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prediction:
    request_id: str
    ref: VersionRef
    time_ns: int
    inputs: Mapping[str, Array]
    output_names: Sequence[str]
    outputs: Sequence[Array]
    latency_s: float
    status_code: int
    traceparent: str


class RateLimitedLog:
    """Logs a warning at most once per `interval_s`, with how many times it was suppressed in between."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._next = 0.0
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        log.warning(message + " (%d similar messages suppressed)", *args, self._suppressed)
        self._suppressed = 0
        self._next = now + self.interval_s


class PredictionBuffer:
    """Bounded FIFO between the request path and the publisher; never blocks the caller."""

    def __init__(self, capacity: int, on_drop: Callable[[str], None] = lambda model: None) -> None:
        self.capacity = capacity
        self.dropped = 0
        self._items: deque[Prediction] = deque()
        self._on_drop = on_drop
        self._drop_log = RateLimitedLog()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, prediction: Prediction) -> None:
        if len(self._items) >= self.capacity:
            self.dropped += 1
            self._on_drop(prediction.ref.model)
            self._drop_log.warning("prediction buffer full: dropped records, %d in total", self.dropped)
            return
        self._items.append(prediction)

    def peek(self, limit: int) -> list[Prediction]:
        """The oldest `limit` predictions, left in place until `commit` (so a failed publish retries them)."""
        return list(itertools.islice(self._items, limit))

    def commit(self, count: int) -> None:
        for _ in range(count):
            self._items.popleft()


@dataclass(frozen=True, slots=True)
class RecordPolicy:
    """How much of each tensor a record carries: tensors above `max_values` are sampled and truncated."""

    max_values: int = 1024
    large_sample_rate: float = 0.1


def version_ref_message(ref: VersionRef) -> common_pb2.ModelVersionRef:
    return common_pb2.ModelVersionRef(model_name=ref.model, version=ref.version, digest=ref.digest)


def to_batches(
    predictions: Sequence[Prediction], policy: RecordPolicy
) -> dict[str, serving_events_pb2.PredictionBatch]:
    """One PredictionBatch per model, records in arrival order.

    Records are written straight in protobuf wire format and parsed once per batch: building them field by field
    through the Python message API cost several times the inference of a small model, per prediction.
    """
    encoded: dict[str, list[bytes]] = {}
    refs: dict[VersionRef, bytes] = {}
    for prediction in predictions:
        ref = prediction.ref
        ref_bytes = refs.get(ref)
        if ref_bytes is None:
            ref_bytes = refs[ref] = version_ref_message(ref).SerializeToString()
        encoded.setdefault(ref.model, []).append(_field(_RECORDS, encode_record(prediction, ref_bytes, policy)))
    return {
        model: serving_events_pb2.PredictionBatch.FromString(_field(_MODEL_NAME, model.encode()) + b"".join(records))
        for model, records in encoded.items()
    }


# Field keys (field number << 3 | wire type) of PredictionBatch, PredictionRecord, PredictionTensor, Timestamp.
_MODEL_NAME, _RECORDS = b"\x0a", b"\x12"
_REQUEST_ID, _VERSION, _TIMESTAMP, _INPUTS, _OUTPUTS, _LATENCY, _STATUS, _TRACEPARENT = (
    b"\x0a",
    b"\x12",
    b"\x1a",
    b"\x22",
    b"\x2a",
    b"\x31",
    b"\x38",
    b"\x42",
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


def encode_record(prediction: Prediction, version: bytes, policy: RecordPolicy) -> bytes:
    """A PredictionRecord in wire format; `version` is its ModelVersionRef, already serialized."""
    seconds, nanos = divmod(prediction.time_ns, 1_000_000_000)
    parts = [
        _field(_REQUEST_ID, prediction.request_id.encode()),
        _field(_VERSION, version),
        _field(_TIMESTAMP, _SECONDS + _varint(seconds) + _NANOS + _varint(nanos)),
    ]
    parts += [_field(_INPUTS, t) for t in _tensors(prediction.inputs.items(), policy)]
    parts += [
        _field(_OUTPUTS, t) for t in _tensors(zip(prediction.output_names, prediction.outputs, strict=True), policy)
    ]
    parts.append(_LATENCY + _DOUBLE.pack(prediction.latency_s * 1000.0))
    if prediction.status_code:
        parts.append(_STATUS + _varint(prediction.status_code))
    if prediction.traceparent:
        parts.append(_field(_TRACEPARENT, prediction.traceparent.encode()))
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
