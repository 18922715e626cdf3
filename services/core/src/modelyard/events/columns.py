"""The prediction stream's columnar format (PredictionBatch, format version 2): each tensor of a batch is one
contiguous typed column, written once by serving and read by consumers as numpy views of the payload's bytes.

A consumer needs nothing of this module, only numpy (docs/events.md has the few lines):
`np.frombuffer(column.data, "<f4")` is every record's elements of an FP32 column, `np.frombuffer(column.counts,
"<i8")` how many of them each record holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.contracts.events.v1 import serving_events_pb2 as srv
from modelyard.datatypes import NUMERIC_DTYPES

TEXT = "BYTES"
_COUNT, _SHAPE, _TIME, _LATENCY, _STATUS, _REVISION = (np.dtype(t) for t in ("<i8", "<i8", "<i8", "<f8", "<i4", "<i8"))
_DATATYPE_OF = {dtype: name for name, dtype in NUMERIC_DTYPES.items()}


def write_column(
    name: str, datatype: str, shapes: Sequence[Sequence[int]], parts: Sequence[npt.NDArray[np.generic] | list[str]]
) -> srv.TensorColumn:
    """A column of `parts` (each record's flattened elements, possibly none) of one `datatype`: numeric parts are
    packed as that datatype, BYTES parts (lists of text) go to `strings`; `shapes` has one shape per record."""
    rank = max((len(shape) for shape in shapes), default=0)
    column = srv.TensorColumn(
        name=name,
        datatype=datatype,
        rank=rank,
        shapes=np.array([list(s) if len(s) == rank else [0] * rank for s in shapes], dtype=_SHAPE).tobytes(),
        counts=np.fromiter((len(part) for part in parts), dtype=_COUNT, count=len(parts)).tobytes(),
    )
    if datatype == TEXT:
        column.strings.extend(text for part in parts for text in part)
    else:
        numbers = [part for part in parts if len(part)]
        if numbers:
            column.data = np.concatenate(numbers).astype(NUMERIC_DTYPES[datatype], copy=False).tobytes()
    return column


def write_rows(name: str, array: npt.NDArray[np.generic]) -> srv.TensorColumn:
    """The column of a records-first array: record i holds `array[i]` (shape `array.shape[1:]`); text when the
    array holds strings."""
    n, shape = array.shape[0], array.shape[1:]
    width = int(np.prod(shape))
    column = srv.TensorColumn(
        name=name,
        rank=len(shape),
        shapes=np.tile(np.array(shape, dtype=_SHAPE), n).tobytes(),
        counts=np.full(n, width, dtype=_COUNT).tobytes(),
    )
    if array.dtype.kind in "OSU":
        column.datatype = TEXT
        column.strings.extend(str(e) for e in array.ravel().tolist())
    else:
        column.datatype = _DATATYPE_OF[array.dtype.newbyteorder("<")]
        column.data = array.astype(NUMERIC_DTYPES[column.datatype], copy=False).tobytes()
    return column


def set_per_record(
    batch: srv.PredictionBatch,
    times_ns: npt.ArrayLike,
    latency_ms: npt.ArrayLike,
    status: npt.ArrayLike,
    plan_revisions: Sequence[int] = (),
) -> srv.PredictionBatch:
    """`batch` with its packed per-record fields set (one value per record each; plan revisions left out when no
    record was routed by a plan)."""
    batch.time_unix_nano = np.asarray(times_ns, dtype=_TIME).tobytes()
    batch.latency_ms = np.asarray(latency_ms, dtype=_LATENCY).tobytes()
    batch.status_codes = np.asarray(status, dtype=_STATUS).tobytes()
    if any(plan_revisions):
        batch.plan_revisions = np.asarray(plan_revisions, dtype=_REVISION).tobytes()
    return batch


@dataclass(frozen=True, eq=False)
class Column:
    """A tensor column as numpy arrays: `values` (every record's elements, a view of the payload for numbers),
    `counts` (elements per record) and `shapes` (records x rank)."""

    name: str
    values: npt.NDArray[np.generic]
    counts: npt.NDArray[np.int64]
    shapes: npt.NDArray[np.int64]

    @property
    def is_text(self) -> bool:
        return self.values.dtype.kind == "U"


@dataclass(frozen=True, eq=False)
class Records:
    """A PredictionBatch read: per-record arrays and the tensor columns, every one checked against the record
    count."""

    request_ids: list[str]
    time_unix_nano: npt.NDArray[np.int64]
    latency_ms: npt.NDArray[np.float64]
    status_codes: npt.NDArray[np.int32]
    traceparents: list[str]  # one per record, or empty when no record carries one
    plan_revisions: npt.NDArray[np.int64]  # one per record (zeros when the batch carries none)
    inputs: list[Column]
    outputs: list[Column]


def read_batch(batch: srv.PredictionBatch) -> Records:
    """The batch's columns as numpy views; ValueError (naming the field) when a field disagrees with the record
    count or a column's datatype is unknown, e.g. a version 1 batch (records, no request ids) or a corrupt one."""
    request_ids = list(batch.request_ids)
    n = len(request_ids)
    if not n:
        raise ValueError("a prediction batch without request ids (an empty batch, or format version 1)")
    traceparents = list(batch.traceparents)
    if traceparents and len(traceparents) != n:
        raise ValueError(f"{len(traceparents)} traceparents for {n} records")
    return Records(
        request_ids,
        _packed(batch.time_unix_nano, _TIME, n, "time_unix_nano"),
        _packed(batch.latency_ms, _LATENCY, n, "latency_ms"),
        _packed(batch.status_codes, _STATUS, n, "status_codes"),
        traceparents,
        _packed(batch.plan_revisions, _REVISION, n, "plan_revisions")
        if batch.plan_revisions
        else np.zeros(n, np.int64),
        [read_column(c, n) for c in batch.inputs],
        [read_column(c, n) for c in batch.outputs],
    )


def read_column(column: srv.TensorColumn, records: int) -> Column:
    counts = _packed(column.counts, _COUNT, records, f"{column.name}.counts")
    shapes = _packed(column.shapes, _SHAPE, records * column.rank, f"{column.name}.shapes").reshape(
        records, column.rank
    )
    if column.datatype == TEXT:
        values: npt.NDArray[np.generic] = np.array(column.strings, dtype=str)
    else:
        dtype = NUMERIC_DTYPES.get(column.datatype)
        if dtype is None:
            raise ValueError(f"tensor {column.name[:64]!r}: unknown datatype {column.datatype[:16]!r}")
        if len(column.data) % dtype.itemsize:
            raise ValueError(f"tensor {column.name[:64]!r}: data is not a whole number of {column.datatype}")
        values = np.frombuffer(column.data, dtype=dtype)
    if int(counts.sum()) != values.size or (counts < 0).any():
        raise ValueError(f"tensor {column.name[:64]!r}: counts add up to {counts.sum()}, not {values.size}")
    return Column(column.name, values, counts, shapes)


def _packed(data: bytes, dtype: np.dtype[np.generic], n: int, field: str) -> npt.NDArray[Any]:
    if len(data) != n * dtype.itemsize:
        raise ValueError(f"{field}: {len(data)} bytes, not {n} x {dtype.itemsize}")
    return np.frombuffer(data, dtype=dtype)
