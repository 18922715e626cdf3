"""The frozen reference profile of one model version: what every live window is compared with.

Built once from the version's reference dataset and never updated in place (re-baselining makes a new profile
with a new id). Numeric features keep a sorted sample (for exact KS and Wasserstein), its prefix sums (so the
Wasserstein integral is O(m log n) per window) and quantile bin edges (PSI); categorical features keep level
counts with rare levels merged into one "other" bucket.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.monitor.domain.cbpe import Calibration, isotonic_calibration
from modelyard.monitor.domain.errors import ReferenceDataError
from modelyard.monitor.domain.metrics import (
    FloatArray,
    IntArray,
    MetricEstimate,
    bootstrap_classification,
    bootstrap_regression,
    classes,
)
from modelyard.monitor.domain.policy import PerformancePolicy

MAX_REFERENCE_ROWS = 50_000
OTHER = "__other__"
# Columns of a reference dataset that describe model outputs carry this prefix ("output:probabilities[1]").
OUTPUT_PREFIX = "output:"
# Ground truth of the reference rows ("truth:label" pairs with "output:label"): not a feature, it sets the
# error rate the performance detector expects.
TRUTH_PREFIX = "truth:"
_INDEXED = re.compile(r"^(?P<tensor>.+)\[(?P<index>\d+)\]$")


class Kind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class Role(StrEnum):
    INPUT = "input"
    OUTPUT = "output"


@dataclass(frozen=True)
class FeatureSpec:
    """Where a feature lives in a prediction record: `tensor[index]` of the inputs or the outputs (`column`, as the
    monitor names locations), and what it is called: the registered feature name when there is one, else `column`."""

    name: str
    kind: Kind
    role: Role
    tensor: str
    index: int
    column: str

    @classmethod
    def from_column(cls, column: str, kind: Kind) -> FeatureSpec:
        """`x`, `x[3]`, `output:probabilities[1]`: the column name says tensor, index and role."""
        role = Role.OUTPUT if column.startswith(OUTPUT_PREFIX) else Role.INPUT
        name = column.removeprefix(OUTPUT_PREFIX)
        match = _INDEXED.match(name)
        tensor, index = (match["tensor"], int(match["index"])) if match else (name, 0)
        return cls(name=column, kind=kind, role=role, tensor=tensor, index=index, column=column)


@dataclass(frozen=True, eq=False)
class NumericProfile:
    sorted_values: FloatArray
    prefix_sums: FloatArray  # prefix_sums[i] = sum(sorted_values[:i]); length n + 1
    bin_edges: FloatArray  # interior quantile edges; len(bin_edges) + 1 bins
    bin_proportions: FloatArray
    std: float
    null_rate: float

    @property
    def n(self) -> int:
        return int(self.sorted_values.size)


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    levels: tuple[str, ...]  # kept levels; the last is OTHER (rare levels merged)
    counts: IntArray  # per level, aligned with `levels`
    rare_levels: frozenset[str]  # seen in the reference but merged into OTHER
    null_rate: float

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def codes(self, values: Sequence[str] | npt.NDArray[np.str_]) -> tuple[IntArray, int]:
        """Bucket index of each value (rare and unseen -> OTHER) and how many were never seen in the reference.

        Only the distinct values are looked up in Python, so the cost per row is numpy's.
        """
        distinct, inverse = np.unique(np.asarray(values, dtype=str), return_inverse=True)
        index = {level: i for i, level in enumerate(self.levels)}
        other = len(self.levels) - 1
        lookup = np.array([index.get(str(v), other) for v in distinct], dtype=np.int64)
        unseen_mask = np.array([str(v) not in index and str(v) not in self.rare_levels for v in distinct], dtype=bool)
        unseen = int(np.bincount(inverse, minlength=distinct.size)[unseen_mask].sum()) if distinct.size else 0
        return lookup[inverse].astype(np.int64), unseen


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Profile of one model version's reference data; `id` is a content hash, so equal data means equal id."""

    model_name: str
    model_version: int
    features: tuple[FeatureSpec, ...]
    numeric: Mapping[str, NumericProfile]
    categorical: Mapping[str, CategoricalProfile]
    source: str  # where the reference data came from (artifact digest or file)
    # Mean and standard deviation of the per-example error on the reference data, when it has ground truth.
    baseline_error: tuple[float, float] | None = None
    # The model's performance on the reference rows (outputs against truth), per metric with its standard error.
    baseline: Mapping[str, MetricEstimate] = field(default_factory=dict)
    # The positive-class score calibrated on the reference's truth (CBPE), when it has scores and truth.
    calibration: Calibration | None = None

    @cached_property
    def id(self) -> str:
        """`model/version/content-hash`: a new reference (re-baselining) is a new id, the same one never is."""
        meta, arrays = self._parts()
        digest = hashlib.sha256(meta)
        for name in sorted(arrays):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(arrays[name]).tobytes())
        return f"{self.model_name}/{self.model_version}/{digest.hexdigest()[:16]}"

    @classmethod
    def empty(cls, model_name: str, model_version: int) -> ReferenceProfile:
        """The stand-in while a version has no reference data: no features, so only operations are monitored."""
        return cls(model_name, model_version, (), {}, {}, source="")

    def numeric_features(self, role: Role) -> list[FeatureSpec]:
        return [f for f in self.features if f.kind is Kind.NUMERIC and f.role is role]

    def categorical_features(self, role: Role) -> list[FeatureSpec]:
        return [f for f in self.features if f.kind is Kind.CATEGORICAL and f.role is role]

    def to_bytes(self) -> bytes:
        """A self-contained .npz: arrays as arrays, the rest as one JSON document."""
        meta, arrays = self._parts()
        buffer = io.BytesIO()
        entries: dict[str, Any] = {"meta": np.frombuffer(meta, dtype=np.uint8), **arrays}
        np.savez(buffer, **entries)
        return buffer.getvalue()

    def _parts(self) -> tuple[bytes, dict[str, npt.NDArray[np.generic]]]:
        arrays: dict[str, npt.NDArray[np.generic]] = {}
        meta: dict[str, object] = {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "source": self.source,
            "baseline_error": self.baseline_error,
            "baseline": {name: [m.value, m.standard_error] for name, m in sorted(self.baseline.items())},
            "features": [[f.name, f.kind.value, f.column] for f in self.features],
            "numeric": {},
            "categorical": {},
        }
        for i, f in enumerate(self.features):
            if f.kind is Kind.NUMERIC:
                p = self.numeric[f.name]
                arrays[f"n{i}_values"] = p.sorted_values
                arrays[f"n{i}_edges"] = p.bin_edges
                arrays[f"n{i}_props"] = p.bin_proportions
                meta["numeric"][f.name] = {"std": p.std, "null_rate": p.null_rate}  # type: ignore[index]
            else:
                c = self.categorical[f.name]
                arrays[f"c{i}_counts"] = c.counts
                meta["categorical"][f.name] = {  # type: ignore[index]
                    "levels": list(c.levels),
                    "rare": sorted(c.rare_levels),
                    "null_rate": c.null_rate,
                }
        if self.calibration is not None:
            arrays["calibration_x"], arrays["calibration_y"] = self.calibration.x, self.calibration.y
            if self.calibration.n is not None:  # absent in older profiles: their id stays what it was
                arrays["calibration_n"] = self.calibration.n
        return json.dumps(meta, sort_keys=True).encode(), arrays

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        with np.load(io.BytesIO(data)) as arrays:
            meta = json.loads(arrays["meta"].tobytes().decode())
            calibration = None
            if "calibration_x" in arrays:
                calibration = Calibration(
                    np.asarray(arrays["calibration_x"], dtype=np.float64),
                    np.asarray(arrays["calibration_y"], dtype=np.float64),
                    np.asarray(arrays["calibration_n"], dtype=np.float64) if "calibration_n" in arrays else None,
                )
            features = tuple(
                dataclasses.replace(FeatureSpec.from_column(where[0] if where else name, Kind(kind)), name=name)
                for name, kind, *where in meta["features"]  # profiles stored before names were kept: [name, kind]
            )
            numeric: dict[str, NumericProfile] = {}
            categorical: dict[str, CategoricalProfile] = {}
            for i, f in enumerate(features):
                if f.kind is Kind.NUMERIC:
                    values = np.asarray(arrays[f"n{i}_values"], dtype=np.float64)
                    m = meta["numeric"][f.name]
                    numeric[f.name] = NumericProfile(
                        sorted_values=values,
                        prefix_sums=_prefix_sums(values),
                        bin_edges=np.asarray(arrays[f"n{i}_edges"], dtype=np.float64),
                        bin_proportions=np.asarray(arrays[f"n{i}_props"], dtype=np.float64),
                        std=float(m["std"]),
                        null_rate=float(m["null_rate"]),
                    )
                else:
                    m = meta["categorical"][f.name]
                    categorical[f.name] = CategoricalProfile(
                        levels=tuple(m["levels"]),
                        counts=np.asarray(arrays[f"c{i}_counts"], dtype=np.int64),
                        rare_levels=frozenset(m["rare"]),
                        null_rate=float(m["null_rate"]),
                    )
        return cls(
            model_name=meta["model_name"],
            model_version=int(meta["model_version"]),
            features=features,
            numeric=numeric,
            categorical=categorical,
            source=meta["source"],
            baseline_error=tuple(meta["baseline_error"]) if meta.get("baseline_error") else None,
            baseline={name: MetricEstimate(*pair) for name, pair in meta.get("baseline", {}).items()},
            calibration=calibration,
        )


@dataclass(frozen=True)
class ProfileOptions:
    max_rows: int = MAX_REFERENCE_ROWS
    psi_bins: int = 10
    # Levels rarer than this in the reference are merged into OTHER, so no bucket has a tiny expected count.
    rare_level_share: float = 0.01
    seed: int = 0
    # Which outputs are the prediction (the reference's `output:<label_output>` against `truth:<label_output>`).
    performance: PerformancePolicy = field(default_factory=PerformancePolicy)


def build_profile(
    model_name: str,
    model_version: int,
    columns: Mapping[str, npt.NDArray[np.generic]],
    *,
    source: str,
    options: ProfileOptions = ProfileOptions(),
    names: Mapping[str, str] | None = None,
) -> ReferenceProfile:
    """Profile a reference table given as columns; numeric columns are float arrays (NaN = missing), any other
    dtype is categorical (None/"" = missing). Sampling is seeded, so one dataset always yields one profile.
    `names` (column -> registered feature name) name the features; a name that is also a column is not used."""
    if not columns:
        raise ReferenceDataError("the reference dataset has no columns")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ReferenceDataError(f"reference columns differ in length: {sorted(lengths)}")
    (n_rows,) = lengths
    if n_rows == 0:
        raise ReferenceDataError("the reference dataset has no rows")
    rows = np.arange(n_rows)
    if n_rows > options.max_rows:
        rows = np.sort(np.random.default_rng(options.seed).choice(n_rows, options.max_rows, replace=False))
    sampled = {k: np.asarray(v)[rows] for k, v in columns.items()}
    features: list[FeatureSpec] = []
    numeric: dict[str, NumericProfile] = {}
    categorical: dict[str, CategoricalProfile] = {}
    usable = {c: n for c, n in (names or {}).items() if n not in columns and list((names or {}).values()).count(n) == 1}
    for column in sorted(c for c in columns if not c.startswith(TRUTH_PREFIX)):
        values = sampled[column]
        kind = Kind.NUMERIC if np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_ else Kind.CATEGORICAL
        spec = dataclasses.replace(FeatureSpec.from_column(column, kind), name=usable.get(column, column))
        if kind is Kind.NUMERIC:
            numeric[spec.name] = _numeric_profile(spec.name, values.astype(np.float64), options.psi_bins)
        else:
            categorical[spec.name] = _categorical_profile(values, options.rare_level_share)
        features.append(spec)
    return ReferenceProfile(
        model_name=model_name,
        model_version=model_version,
        features=tuple(features),
        numeric=numeric,
        categorical=categorical,
        source=source,
        baseline_error=_baseline_error(sampled),
        baseline=_baseline(sampled, options),
        calibration=_calibration(sampled, options.performance),
    )


def _baseline_error(columns: Mapping[str, npt.NDArray[np.generic]]) -> tuple[float, float] | None:
    """Error of the reference's own outputs against its truth: misclassification rate, else absolute error."""
    for column in sorted(columns):
        if not column.startswith(TRUTH_PREFIX):
            continue
        predicted = columns.get(OUTPUT_PREFIX + column.removeprefix(TRUTH_PREFIX))
        if predicted is None:
            continue
        truth = columns[column]
        if np.issubdtype(truth.dtype, np.number) and np.issubdtype(predicted.dtype, np.number):
            errors = np.abs(predicted.astype(np.float64) - truth.astype(np.float64))
        else:
            errors = (np.asarray(predicted).astype(str) != np.asarray(truth).astype(str)).astype(np.float64)
        return float(errors.mean()), float(errors.std())
    return None


def _baseline(columns: Mapping[str, npt.NDArray[np.generic]], options: ProfileOptions) -> dict[str, MetricEstimate]:
    """Metrics of the reference's outputs against its truth: the class output with the positive class's score, or
    the value output; empty when the reference has neither pair."""
    policy = options.performance
    label, truth = columns.get(OUTPUT_PREFIX + policy.label_output), columns.get(TRUTH_PREFIX + policy.label_output)
    if label is not None and truth is not None:
        score = columns.get(f"{OUTPUT_PREFIX}{policy.score_output}[{policy.score_index}]")
        scores = np.full(label.size, np.nan) if score is None else np.asarray(score, dtype=np.float64)
        c = classes(_labels(label), _labels(truth), scores, policy.positive_label)
        return bootstrap_classification(c, seed=options.seed)
    value, target = columns.get(OUTPUT_PREFIX + policy.value_output), columns.get(TRUTH_PREFIX + policy.value_output)
    if value is not None and target is not None:
        return bootstrap_regression(value.astype(np.float64), target.astype(np.float64), seed=options.seed)
    return {}


def _calibration(columns: Mapping[str, npt.NDArray[np.generic]], policy: PerformancePolicy) -> Calibration | None:
    score = columns.get(f"{OUTPUT_PREFIX}{policy.score_output}[{policy.score_index}]")
    truth = columns.get(TRUTH_PREFIX + policy.label_output)
    if score is None or truth is None or not np.issubdtype(score.dtype, np.number):
        return None
    scores = score.astype(np.float64)
    kept = np.isfinite(scores)
    if not kept.any():
        return None
    labels = _labels(truth)[kept]
    # Block sizes serve the likelihood-ratio CUSUM (degradation.py), which needs a binary truth.
    return isotonic_calibration(scores[kept], labels == policy.positive_label, sizes=np.unique(labels).size <= 2)


def _labels(values: npt.NDArray[np.generic]) -> npt.NDArray[np.str_]:
    """Class labels as text; numeric codes as the live stream writes them ("1", not "1.0")."""
    if np.issubdtype(values.dtype, np.number):
        return np.array([f"{v:g}" for v in values.astype(np.float64).tolist()], dtype=str)
    return values.astype(str)


def _numeric_profile(column: str, values: FloatArray, bins: int) -> NumericProfile:
    finite = np.isfinite(values)
    kept = np.sort(values[finite])
    if kept.size == 0:
        raise ReferenceDataError(f"numeric reference column {column!r} has no finite value")
    # Interior quantile edges; duplicates (discrete features) collapse so that no bin is empty by construction.
    edges = np.unique(np.quantile(kept, np.linspace(0, 1, bins + 1)[1:-1]))
    proportions = np.bincount(np.searchsorted(edges, kept, side="right"), minlength=edges.size + 1) / kept.size
    return NumericProfile(
        sorted_values=kept,
        prefix_sums=_prefix_sums(kept),
        bin_edges=edges,
        bin_proportions=proportions.astype(np.float64),
        std=float(kept.std()),
        null_rate=float(1.0 - finite.mean()),
    )


def _categorical_profile(values: npt.NDArray[np.generic], rare_share: float) -> CategoricalProfile:
    missing = np.array([v is None or v == "" for v in values.tolist()], dtype=np.bool_)
    present = values[~missing].astype(str)
    levels, counts = np.unique(present, return_counts=True)
    keep = counts >= rare_share * max(present.size, 1)
    kept_counts = np.append(counts[keep], counts[~keep].sum()).astype(np.int64)
    return CategoricalProfile(
        levels=(*(str(v) for v in levels[keep]), OTHER),
        counts=kept_counts,
        rare_levels=frozenset(str(v) for v in levels[~keep]),
        null_rate=float(missing.mean()),
    )


def _prefix_sums(values: FloatArray) -> FloatArray:
    return np.concatenate(([0.0], np.cumsum(values)))
