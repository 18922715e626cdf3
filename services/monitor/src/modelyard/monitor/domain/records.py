"""Prediction records of one model version, tensor by tensor, and their projection onto a profile's features."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.monitor.domain.profile import FloatArray, Kind, ReferenceProfile, Role
from modelyard.monitor.domain.windows import Columns


@dataclass
class TensorRows:
    """One named tensor over many records: its flattened values per record (numbers or strings)."""

    numbers: list[list[float]] = field(default_factory=list)
    strings: list[list[str]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # which record each entry belongs to


@dataclass
class PredictionRows:
    """What the decoder extracts from a batch for one model version, in record order."""

    model_name: str
    model_version: int
    digest: str
    request_ids: list[str] = field(default_factory=list)
    event_time: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    traceparents: list[str] = field(default_factory=list)  # W3C, of the inference behind each record ("" if none)
    tensors: dict[tuple[Role, str], TensorRows] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.event_time)

    def to_columns(self, profile: ReferenceProfile | None) -> Columns:
        """Columns of the profile's features; a record lacking a profiled tensor or index is a schema violation
        and its value is missing (NaN or "")."""
        n = len(self)
        violations = np.zeros(n, dtype=np.bool_)
        numeric: dict[str, FloatArray] = {}
        categorical: dict[str, npt.NDArray[np.str_]] = {}
        matrices: dict[tuple[Role, str], _Matrix] = {}
        for spec in profile.features if profile else ():
            key = (spec.role, spec.tensor)
            tensor = self.tensors.get(key)
            if tensor is None:
                matrix = _Matrix.missing(n)
            else:
                matrix = matrices.get(key) or matrices.setdefault(key, _Matrix.of(tensor, n))
            present = matrix.widths > spec.index
            violations |= ~present
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
class _Matrix:
    """A tensor's values as a rows x width matrix (padded where records differ in width) and each row's width."""

    numbers: FloatArray
    strings: npt.NDArray[np.str_] | None
    widths: npt.NDArray[np.int64]

    @classmethod
    def missing(cls, n: int) -> _Matrix:
        return cls(np.full((n, 0), np.nan), None, np.zeros(n, dtype=np.int64))

    @classmethod
    def of(cls, tensor: TensorRows, n: int) -> _Matrix:
        is_text = any(tensor.strings)
        values: list[list[float]] | list[list[str]] = tensor.strings if is_text else tensor.numbers
        lengths = np.array([len(v) for v in values], dtype=np.int64)
        width = int(lengths.max()) if lengths.size else 0
        widths = np.zeros(n, dtype=np.int64)
        widths[tensor.rows] = lengths
        if is_text:
            text = np.full((n, width), "", dtype=object)
            text[tensor.rows] = _padded(values, width, "")
            return cls(np.full((n, width), np.nan), text.astype(str), widths)
        numbers = np.full((n, width), np.nan)
        numbers[tensor.rows] = _padded(values, width, np.nan)
        return cls(numbers, None, widths)

    def numeric_column(self, index: int) -> FloatArray:
        if index >= self.numbers.shape[1]:
            return np.full(self.numbers.shape[0], np.nan)
        return self.numbers[:, index].copy()

    def label_column(self, index: int) -> npt.NDArray[np.str_]:
        """Strings as they are; numbers as labels ("3", not "3.0"), so numeric class codes match the reference."""
        rows = self.widths.size
        if self.strings is not None:
            return self.strings[:, index].copy() if index < self.strings.shape[1] else np.full(rows, "")
        column = self.numeric_column(index)
        labels = np.full(rows, "", dtype=object)
        finite = np.isfinite(column)
        labels[finite] = [f"{v:g}" for v in column[finite]]
        return labels.astype(str)


def _padded(values: list[list[Any]], width: int, fill: Any) -> list[list[Any]]:
    if all(len(v) == width for v in values):
        return values  # the usual case: every record has the same width, no copy
    return [v + [fill] * (width - len(v)) for v in values]
