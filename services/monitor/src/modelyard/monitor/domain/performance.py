"""Performance from delayed labels: what a prediction said, what the label says, and the realised metrics.

Predictions wait (bounded, with a TTL no shorter than the longest label delay) keyed by request id; a label joins
its prediction on arrival and is attributed to the prediction's event time, so a late label improves the metrics
of the window it belongs to. The per-example error stream is what `degradation.py` tests against the reference's
own performance (from its `truth:` and `output:` columns), so a model that was always 80% accurate does not alarm
for being 80% accurate.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from modelyard.monitor.domain.metrics import BoolArray, FloatArray, classes, classification_metrics, regression_metrics
from modelyard.monitor.domain.policy import PerformancePolicy
from modelyard.monitor.domain.profile import Role
from modelyard.monitor.domain.records import Feedback, PredictionRows


class PendingPrediction(NamedTuple):
    """A prediction waiting for its label (a tuple: one is made for every prediction, on the hot path)."""

    request_id: str
    model_name: str
    model_version: int
    event_time: float
    label: str | None  # predicted class
    score: float | None  # positive class score
    value: float | None  # predicted value (regression)
    features: str | None = None  # the input features as JSON, kept for retraining snapshots when the policy asks


@dataclass(frozen=True)
class LabelledPrediction:
    prediction: PendingPrediction
    truth_label: str | None
    truth_value: float | None

    @property
    def error(self) -> float | None:
        """1/0 misclassification, or the absolute error of a value; None when they cannot be compared."""
        p = self.prediction
        if self.truth_label is not None and p.label is not None:
            return float(p.label != self.truth_label)
        if self.truth_value is not None and p.value is not None:
            return abs(p.value - self.truth_value)
        return None


@dataclass(frozen=True, eq=False)
class PendingBatch:
    """The predictions of one event of a version that wait for their labels, column-wise: stored as one block, not a
    row each (the store finds a label's row through its index of request ids)."""

    model_name: str
    model_version: int
    request_ids: list[str]  # "" for a record without one: never joined
    event_time: FloatArray
    label: list[str]  # predicted class ("" when none)
    score: FloatArray  # positive class score (NaN when none)
    value: FloatArray  # predicted value (NaN when none)
    features: list[str] | None = None  # the input features as JSON, kept for retraining snapshots

    def __len__(self) -> int:
        return len(self.request_ids)

    def predictions(self, rows: Sequence[int]) -> list[PendingPrediction]:
        """The predictions of `rows`, gathered column-wise (no Python code per field)."""
        take = np.asarray(rows, dtype=np.intp)
        n = take.size
        labels = [self.label[i] or None for i in rows]
        return list(
            map(
                PendingPrediction._make,
                zip(
                    [self.request_ids[i] for i in rows],
                    itertools.repeat(self.model_name, n),
                    itertools.repeat(self.model_version, n),
                    self.event_time[take].tolist(),
                    labels,
                    _optional(self.score[take]),
                    _optional(self.value[take]),
                    itertools.repeat(None, n) if self.features is None else [self.features[i] for i in rows],
                    strict=True,
                ),
            )
        )


def _optional(values: FloatArray) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values.tolist()]


def pending_predictions(
    rows: PredictionRows, policy: PerformancePolicy, features: Sequence[str] | None = None
) -> PendingBatch | None:
    """What each record predicted (with its features as JSON, when given); None when no record carries a request
    id to join labels on."""
    if not any(rows.request_ids):
        return None
    return PendingBatch(
        rows.model_name,
        rows.model_version,
        list(rows.request_ids),
        np.asarray(rows.event_time, dtype=np.float64),
        rows.matrix(Role.OUTPUT, policy.label_output).label_column(0).tolist(),  # the first element: "1"
        rows.matrix(Role.OUTPUT, policy.score_output).numeric_column(policy.score_index),
        rows.matrix(Role.OUTPUT, policy.value_output).numeric_column(0),
        None if features is None else list(features),
    )


@dataclass(frozen=True)
class RealisedMetrics:
    labelled: int
    metrics: dict[str, float]


def realised_metrics(labelled: Sequence[LabelledPrediction], positive_label: str) -> RealisedMetrics:
    """The classification metrics over the labelled classes and the regression ones over the labelled values."""
    metrics: dict[str, float] = {}
    labelled_classes = [x for x in labelled if x.truth_label is not None and x.prediction.label is not None]
    if labelled_classes:
        predicted = np.array([x.prediction.label for x in labelled_classes], dtype=str)
        truth = np.array([x.truth_label for x in labelled_classes], dtype=str)
        score = np.array(
            [math.nan if x.prediction.score is None else x.prediction.score for x in labelled_classes], dtype=np.float64
        )
        metrics |= classification_metrics(classes(predicted, truth, score, positive_label))
    values = [x for x in labelled if x.truth_value is not None and x.prediction.value is not None]
    if values:
        metrics |= regression_metrics(
            np.array([x.prediction.value for x in values], dtype=np.float64),
            np.array([x.truth_value for x in values], dtype=np.float64),
        )
    return RealisedMetrics(len(labelled), metrics)


def join_labels(feedback: Sequence[Feedback], waiting: Mapping[str, PendingPrediction]) -> list[LabelledPrediction]:
    """The labels that found their prediction, in arrival order; a prediction takes its first label only."""
    joined = []
    left = dict(waiting)
    for labels in feedback:
        text = bool(labels.truths) and isinstance(labels.truths[0], str)
        for request_id, truth in zip(labels.request_ids, labels.truths, strict=True):
            prediction = left.pop(request_id, None)
            if prediction is not None:
                joined.append(
                    LabelledPrediction(prediction, truth, None) if text else LabelledPrediction(prediction, None, truth)  # type: ignore[arg-type]
                )
    return joined


def group_by_version(labelled: Sequence[LabelledPrediction]) -> dict[tuple[str, int], list[LabelledPrediction]]:
    groups: dict[tuple[str, int], list[LabelledPrediction]] = {}
    for x in labelled:
        groups.setdefault((x.prediction.model_name, x.prediction.model_version), []).append(x)
    return groups


class ErrorStream(NamedTuple):
    """The labelled predictions that can be compared, column-wise: what `degradation.observe_errors` tests."""

    errors: FloatArray  # 1/0 misclassification, or the absolute error of a value
    times: FloatArray  # their predictions' event times
    scores: FloatArray  # positive class score (NaN when none)
    predicted_positive: BoolArray  # the prediction was the positive class


def errors_of(labelled: Sequence[LabelledPrediction], positive_label: str) -> ErrorStream:
    """The per-example errors of the labelled predictions that can be compared, with what they predicted."""
    rows = [
        (e, x.prediction.event_time, x.prediction.score, x.prediction.label)
        for x in labelled
        if (e := x.error) is not None
    ]
    errors, times, scores, labels = zip(*rows, strict=True) if rows else ((), (), (), ())
    return ErrorStream(
        np.array(errors, dtype=np.float64),
        np.array(times, dtype=np.float64),
        np.array(scores, dtype=np.float64),  # None -> NaN
        np.array(labels, dtype=object) == positive_label,
    )
