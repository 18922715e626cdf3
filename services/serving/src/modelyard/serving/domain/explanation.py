"""Explanations, transport-free: which features a request has, which output columns are explained, the background.

A model's features are the values of one row of its inputs, input by input: element j of an input whose rows
hold k values is `<input>[j]` (`<input>` when k is 1), or the j-th feature name registered for that input. The
background sample comes from the version's reference dataset, whose columns carry those same names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np

from modelyard.attributions import Attributions, Column
from modelyard.errors import ErrorKind
from modelyard.serving.domain.errors import InvalidArgument, ResourceExhausted, ServingError
from modelyard.serving.domain.model import Signature, TensorSpec, VersionRef
from modelyard.serving.domain.tensors import Array

FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})


class NoReference(ServingError):
    """The version has no reference dataset to take a background sample from, or it lacks the model's features."""

    kind = ErrorKind.FAILED_PRECONDITION


class ExplanationFailed(ServingError):
    """The explainer or the model raised while explaining rows that passed validation."""


class PoolFull(ResourceExhausted):
    """Every place of the explanation pool is taken: try again later (HTTP 429, not a request over a size limit)."""


class Classes(StrEnum):
    """Which columns of a two-dimensional output are explained (see the ExplanationService proto)."""

    PREDICTED = "predicted"  # per row, the largest (the predicted class's probability)
    ALL = "all"
    INDEX = "index"


@dataclass(frozen=True, slots=True)
class ExplainOptions:
    output: str = ""  # default: the last floating-point output
    classes: Classes = Classes.PREDICTED
    class_index: int = 0


@dataclass(frozen=True, slots=True)
class Feature:
    input: str
    index: int  # position in the flattened row of the input
    width: int  # values per row of the input

    @property
    def location(self) -> str:
        return self.input if self.width == 1 else f"{self.input}[{self.index}]"


@dataclass(frozen=True, slots=True)
class Reference:
    """A version's reference dataset: columns by name, the registered feature names of each input, its origin."""

    columns: Mapping[str, Array]
    feature_names: Mapping[str, Sequence[str]]
    source: str

    def name(self, feature: Feature) -> str:
        names = self.feature_names.get(feature.input, ())
        return names[feature.index] if len(names) == feature.width else feature.location

    def background(self, features: Sequence[Feature], what: str) -> list[Array]:
        """One column per feature, by registered name or by location; NoReference when one is missing."""
        columns = []
        for feature in features:
            column = self.columns.get(self.name(feature), self.columns.get(feature.location))
            if column is None:
                raise NoReference(f"the reference dataset of {what} has no column for feature '{self.name(feature)}'")
            columns.append(column)
        return columns


@dataclass(frozen=True, slots=True)
class OutputAttribution:
    index: int
    base_value: float
    prediction: float
    attributions: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    ref: VersionRef
    request_id: str
    output: str
    feature_names: tuple[str, ...]
    rows: tuple[tuple[OutputAttribution, ...], ...]
    method: str
    background_rows: int
    background_source: str


@dataclass(frozen=True, slots=True)
class InputLayout:
    """How one input's feature columns make its tensor: V2 datatype and the shape of one row."""

    name: str
    datatype: str
    row_shape: tuple[int, ...]

    @property
    def width(self) -> int:
        return int(np.prod(self.row_shape, dtype=np.int64))


class AttributionPool(Protocol):
    """Runs attributions off the inference path, bounded (`modelyard.serving.adapters.explainer`)."""

    permutations: int

    def reserve(self) -> AbstractContextManager[None]:
        """A place for one explanation; raises ResourceExhausted when the pool is full."""
        ...

    async def run(
        self,
        ref: VersionRef,
        artifact: Callable[[], Awaitable[bytes]],
        inputs: Sequence[InputLayout],
        output: str,
        rows: list[Column],
        background: list[Column],
    ) -> Attributions: ...

    def close(self) -> None: ...


class ReferenceSource(Protocol):
    """Where a version's reference dataset comes from (the registry, or a file next to a local model)."""

    async def fetch(self, ref: VersionRef) -> Reference:
        """Raises NoReference when the version has none, Unavailable when the source is away."""
        ...

    async def close(self) -> None: ...


def layout_of(signature: Signature, inputs: Mapping[str, Array]) -> list[InputLayout]:
    datatypes = {spec.name: spec.datatype for spec in signature.inputs}
    return [InputLayout(name, datatypes[name], tuple(array.shape[1:])) for name, array in inputs.items()]


def features_of(inputs: Mapping[str, Array]) -> list[Feature]:
    """The features of decoded request inputs, input by input in request order."""
    features = []
    for name, array in inputs.items():
        width = int(np.prod(array.shape[1:], dtype=np.int64)) if array.ndim > 1 else 1
        features += [Feature(name, j, width) for j in range(width)]
    return features


def row_columns(inputs: Mapping[str, Array]) -> list[Array]:
    """The request's rows as one column per feature (string elements as str)."""
    columns: list[Array] = []
    for name, array in inputs.items():
        flat = array.reshape(len(array), -1) if array.ndim > 1 else array.reshape(-1, 1)
        if flat.dtype.kind == "O":
            try:
                flat = np.vectorize(lambda e: e.decode() if isinstance(e, bytes) else e, otypes=[object])(flat)
            except UnicodeDecodeError as exc:
                raise InvalidArgument(f"input '{name}': element is not UTF-8") from exc
        columns += [flat[:, j] for j in range(flat.shape[1])]
    return columns


def explained_output(signature: Signature, options: ExplainOptions) -> TensorSpec:
    """The output to explain: the one named, else the last floating-point one; InvalidArgument otherwise."""
    if options.output:
        spec = next((s for s in signature.outputs if s.name == options.output), None)
        if spec is None:
            raise InvalidArgument(f"unknown output '{options.output}'")
    else:
        spec = next((s for s in reversed(signature.outputs) if s.datatype in FLOAT_TYPES), None)
        if spec is None:
            raise InvalidArgument("the model has no floating-point output to explain")
    if spec.datatype not in FLOAT_TYPES:
        raise InvalidArgument(f"output '{spec.name}' is {spec.datatype}: only floating-point outputs are explained")
    columns = int(np.prod(spec.shape[1:])) if len(spec.shape) > 1 and min(spec.shape[1:]) > 0 else None
    if options.classes is Classes.INDEX and not (0 <= options.class_index < (columns or options.class_index + 1)):
        raise InvalidArgument(f"class index {options.class_index} is outside output '{spec.name}'")
    return spec


def select(
    values: Array, base_values: Array, predictions: Array, options: ExplainOptions
) -> tuple[tuple[OutputAttribution, ...], ...]:
    """Per row, the explained columns, from values (rows, features, outputs), base values (outputs,) and
    predictions (rows, outputs)."""
    width = predictions.shape[1]
    if options.classes is Classes.INDEX and options.class_index >= width:
        raise InvalidArgument(f"class index {options.class_index} is outside the output's {width} columns")
    rows = []
    for i in range(len(predictions)):
        if options.classes is Classes.ALL:
            columns: Sequence[int] = range(width)
        elif options.classes is Classes.INDEX:
            columns = [options.class_index]
        else:
            columns = [int(np.argmax(predictions[i]))]
        rows.append(
            tuple(
                OutputAttribution(
                    c, float(base_values[c]), float(predictions[i, c]), tuple(float(v) for v in values[i, :, c])
                )
                for c in columns
            )
        )
    return tuple(rows)
