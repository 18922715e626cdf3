"""Prediction records of one model version, tensor by tensor, and their projection onto a profile's features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from modelyard.monitor.domain.metrics import FloatArray
from modelyard.monitor.domain.profile import Kind, ReferenceProfile, Role
from modelyard.monitor.domain.windows import Columns


@dataclass(frozen=True, eq=False)
class TensorRows:
    """One named tensor over the records of a batch: every record's elements one after another (numbers, or text),
    typed as sent, and how many each record holds (0 where a record lacks it)."""

    values: npt.NDArray[np.generic]
    counts: npt.NDArray[np.int64]


@dataclass
class PredictionRows:
    """What the decoder extracts from a batch for one model version, in record order."""

    model_name: str
    model_version: int
    digest: str
    request_ids: list[str]
    event_time: FloatArray
    latency_ms: FloatArray
    status: npt.NDArray[np.int32]
    traceparents: list[str]  # W3C, of the inference behind each record ("" if none); empty when none has one
    plan_revisions: npt.NDArray[np.int64]  # of the plan that routed each record (provenance; 0: outside any plan)
    tensors: dict[tuple[Role, str], TensorRows] = field(default_factory=dict)
    _matrices: dict[tuple[Role, str], Matrix] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.event_time)

    def matrix(self, role: Role, tensor: str) -> Matrix:
        """The tensor's values as a records x width matrix (missing where a record lacks it or is narrower)."""
        key = (role, tensor)
        matrix = self._matrices.get(key)
        if matrix is None:
            found = self.tensors.get(key)
            n = len(self)
            matrix = self._matrices[key] = Matrix.missing(n) if found is None else Matrix.of(found, n)
        return matrix

    def to_columns(self, profile: ReferenceProfile | None) -> Columns:
        """Columns of the profile's features; a record lacking a profiled tensor or index is a schema violation
        and its value is missing (NaN or "")."""
        violations = np.zeros(len(self), dtype=np.bool_)
        numeric: dict[str, FloatArray] = {}
        categorical: dict[str, npt.NDArray[np.str_]] = {}
        for spec in profile.features if profile else ():
            matrix = self.matrix(spec.role, spec.tensor)
            violations |= matrix.widths <= spec.index
            if spec.kind is Kind.NUMERIC:
                numeric[spec.name] = matrix.numeric_column(spec.index)
            else:
                categorical[spec.name] = matrix.label_column(spec.index)
        return Columns(
            event_time=np.asarray(self.event_time, dtype=np.float64),
            latency_ms=np.asarray(self.latency_ms, dtype=np.float64),
            status=np.asarray(self.status, dtype=np.int32),
            numeric=numeric,
            categorical=categorical,
            schema_violations=violations,
        )


@dataclass(frozen=True, eq=False)
class Matrix:
    """A tensor's values as a rows x width matrix (padded where records differ in width) and each row's width;
    numbers typed as sent (padded ones as float64, NaN where missing)."""

    numbers: npt.NDArray[np.generic]
    strings: npt.NDArray[np.str_] | None
    widths: npt.NDArray[np.int64]

    @classmethod
    def missing(cls, n: int) -> Matrix:
        return cls(np.full((n, 0), np.nan), None, np.zeros(n, dtype=np.int64))

    @classmethod
    def of(cls, tensor: TensorRows, n: int) -> Matrix:
        flat, widths = tensor.values, tensor.counts
        is_text = flat.dtype.kind == "U"
        width = int(widths.max()) if n else 0
        if (widths == width).all():
            values = flat.reshape(n, width)  # the usual case, every record as wide: a view of the payload
        else:
            # Ragged: place each record's values at (its row, 0..its width) of a padded matrix.
            values = np.full((n, width), "" if is_text else np.nan, dtype=flat.dtype if is_text else np.float64)
            starts = np.concatenate(([0], np.cumsum(widths)[:-1]))
            row = np.repeat(np.arange(n), widths)
            values[row, np.arange(flat.size) - starts[row]] = flat
        if is_text:
            return cls(np.full((n, width), np.nan), values.astype(str, copy=False), widths)
        return cls(values, None, widths)

    def numeric_column(self, index: int) -> FloatArray:
        if index >= self.numbers.shape[1]:
            return np.full(self.numbers.shape[0], np.nan)
        return self.numbers[:, index].astype(np.float64)  # a copy: the matrix may be a view of the payload

    def label_column(self, index: int) -> npt.NDArray[np.str_]:
        """Strings as they are; numbers as labels ("3", not "3.0"), so numeric class codes match the reference."""
        rows = self.widths.size
        if self.strings is not None:
            return self.strings[:, index].copy() if index < self.strings.shape[1] else np.full(rows, "")
        column = self.numeric_column(index)
        labels = np.full(rows, "", dtype=object)
        finite = np.isfinite(column)
        distinct, inverse = np.unique(column[finite], return_inverse=True)  # class codes: a handful of values
        labels[finite] = np.array([f"{v:g}" for v in distinct.tolist()], dtype=object)[inverse]
        return labels.astype(str)


@dataclass(frozen=True, eq=False)
class Feedback:
    """Ground truth for predictions, column-wise: label i is about `request_ids[i]`, its truth `truths[i]` (a class
    label, or a target value)."""

    request_ids: Sequence[str]
    truths: Sequence[str] | Sequence[float]

    def __len__(self) -> int:
        return len(self.request_ids)
