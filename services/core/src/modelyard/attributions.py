"""Model-agnostic feature attributions: Shapley values estimated by the `shap` library's permutation explainer.

Shared by serving (per-row explanations) and governance (global importance at promotion). The model is any
function from a table of rows to its outputs; here a table is a list of feature columns, numeric or string.
shap masks features by copying values between a row and background rows, which its numba kernels only do on
numbers, so string columns travel as float codes (indices into the column's values) and are decoded again just
before the model runs: the model sees exactly the strings of the row or of the background.

Why the permutation explainer: with shap's independent masker it is exact for additive models (a linear model's
attribution is coefficient x (x - background mean)), its attributions always add up to the prediction minus the
base value (each permutation telescopes), and its cost is known in advance: `permutations` x (2 x features + 1)
model evaluations of `len(background)` rows each, per explained row. Needs the optional dependency
`modelyard-core[explain]`; shap is imported on first use (it takes seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Column = npt.NDArray[Any]  # one feature: float64, or object/str for a string feature
Model = Callable[[list[Column]], npt.NDArray[Any]]  # feature columns of m rows -> (m,) or (m, outputs)


@dataclass(frozen=True)
class Attributions:
    values: npt.NDArray[np.float64]  # (rows, features, outputs)
    base_values: npt.NDArray[np.float64]  # (outputs,): the mean output over the background
    predictions: npt.NDArray[np.float64]  # (rows, outputs)


class _Codes:
    """Feature columns <-> one float64 matrix; a string column's values become indices into its vocabulary."""

    def __init__(self, tables: Sequence[Sequence[Column]]) -> None:
        width = len(tables[0])
        self.vocabularies: list[npt.NDArray[Any] | None] = []
        for j in range(width):
            if all(_numeric(table[j]) for table in tables):
                self.vocabularies.append(None)
            else:
                values = np.concatenate([np.asarray(table[j], dtype=object) for table in tables])
                self.vocabularies.append(np.unique(values.astype(str)).astype(object))

    def encode(self, table: Sequence[Column]) -> npt.NDArray[np.float64]:
        columns = [
            np.asarray(column, dtype=np.float64)
            if vocabulary is None
            else np.searchsorted(vocabulary, np.asarray(column, dtype=str).astype(object)).astype(np.float64)
            for column, vocabulary in zip(table, self.vocabularies, strict=True)
        ]
        return np.column_stack(columns)

    def decode(self, matrix: npt.NDArray[np.float64]) -> list[Column]:
        return [
            matrix[:, j] if vocabulary is None else vocabulary[matrix[:, j].astype(np.int64)]
            for j, vocabulary in enumerate(self.vocabularies)
        ]


def _numeric(column: Column) -> bool:
    return np.asarray(column).dtype.kind in "biuf"


def method(permutations: int) -> str:
    """How `attribute` estimates, for the record."""
    return f"shap.PermutationExplainer(permutations={permutations})"


def as_matrix(outputs: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """A model's outputs as (rows, outputs) floats."""
    array = np.asarray(outputs, dtype=np.float64)
    return array.reshape(len(array), -1)


def attribute(
    model: Model,
    rows: Sequence[Column],
    background: Sequence[Column],
    *,
    permutations: int = 5,
    seed: int = 0,
) -> Attributions:
    """Attributions of every feature of every row to each output of `model`, against `background`.

    `rows` and `background` are the same features as columns (of n and of b rows). Deterministic for a seed.
    """
    import shap  # on first use: importing shap (numba, pandas) takes seconds

    codes = _Codes([rows, background])
    x, reference = codes.encode(rows), codes.encode(background)

    def predict(matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return as_matrix(model(codes.decode(matrix)))

    features = x.shape[1]
    masker = shap.maskers.Independent(reference, max_samples=len(reference))
    explainer = shap.explainers.Permutation(predict, masker, seed=seed)
    explanation = explainer(x, max_evals=permutations * (2 * features + 1), silent=True)
    values = np.asarray(explanation.values, dtype=np.float64).reshape(len(x), features, -1)
    base = np.asarray(explanation.base_values, dtype=np.float64).reshape(len(x), -1)[0]
    return Attributions(values, base, predict(x))


def global_importance(attributions: Attributions) -> npt.NDArray[np.float64]:
    """Mean |attribution| of each feature over the rows (and the outputs): (features,)."""
    return np.abs(attributions.values).mean(axis=(0, 2))  # type: ignore[no-any-return]


def warm() -> None:
    """Import shap and compile its numba kernels (seconds of CPU) before a first real request has to wait for it."""
    rows = [np.zeros(1), np.zeros(1)]
    attribute(lambda columns: columns[0] + columns[1], rows, [np.ones(2), np.ones(2)], permutations=1)
