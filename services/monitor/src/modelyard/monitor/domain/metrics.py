"""Performance metrics over arrays of predictions and ground truth, and their sampling uncertainty.

One definition serves the reference (the baseline, with a bootstrap standard error per metric) and every window of
labelled predictions (realised performance), so a window's accuracy and the baseline's are the same statistic.
Classification metrics are about the positive class (precision, recall, F1, ROC AUC, log loss and the expected
calibration error of its score); regression has MAE, RMSE and MAPE (over the non-zero targets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "calibration_error")
REGRESSION = ("mae", "rmse", "mape")
# Metrics where a larger value is worse; for the others (accuracy, AUC, ...) a smaller value is.
LOWER_IS_BETTER = frozenset({"log_loss", "calibration_error", "mae", "rmse", "mape"})
CALIBRATION_BINS = 10
_EPS = float(np.finfo(np.float64).eps)  # log loss clips scores to [eps, 1 - eps], as scikit-learn does


@dataclass(frozen=True)
class Classes:
    """Binary view of labelled classifications: predicted positive, truly positive, the positive score (or NaN)."""

    correct: BoolArray
    predicted: BoolArray
    actual: BoolArray
    score: FloatArray

    def take(self, rows: npt.NDArray[np.intp]) -> Classes:
        return Classes(self.correct[rows], self.predicted[rows], self.actual[rows], self.score[rows])

    def __len__(self) -> int:
        return int(self.correct.size)


def classes(
    predicted: npt.NDArray[np.str_], truth: npt.NDArray[np.str_], score: FloatArray, positive_label: str
) -> Classes:
    return Classes(predicted == truth, predicted == positive_label, truth == positive_label, score)


def classification_metrics(c: Classes) -> dict[str, float]:
    """The classification metrics that are defined on `c` (AUC needs both classes, score metrics need scores)."""
    if len(c) == 0:
        return {}
    tp = float((c.predicted & c.actual).sum())
    metrics = {"accuracy": float(c.correct.mean())}
    if c.predicted.any():
        metrics["precision"] = tp / float(c.predicted.sum())
    if c.actual.any():
        metrics["recall"] = tp / float(c.actual.sum())
    if c.predicted.any() or c.actual.any():
        metrics["f1"] = 2 * tp / float(c.predicted.sum() + c.actual.sum())
    scored = np.isfinite(c.score)
    if scored.any():
        score, actual = c.score[scored], c.actual[scored]
        auc = roc_auc(score, actual)
        if not math.isnan(auc):
            metrics["roc_auc"] = auc
        p = np.clip(score, _EPS, 1 - _EPS)
        metrics["log_loss"] = float(-np.mean(np.where(actual, np.log(p), np.log1p(-p))))
        metrics["calibration_error"] = expected_calibration_error(score, actual)
    return metrics


def regression_metrics(predicted: FloatArray, truth: FloatArray) -> dict[str, float]:
    if predicted.size == 0:
        return {}
    errors = predicted - truth
    metrics = {"mae": float(np.abs(errors).mean()), "rmse": float(np.sqrt((errors**2).mean()))}
    nonzero = truth != 0
    if nonzero.any():
        metrics["mape"] = float(np.abs(errors[nonzero] / truth[nonzero]).mean())
    return metrics


def roc_auc(scores: FloatArray, positive: BoolArray) -> float:
    """ROC AUC as the Mann-Whitney U statistic over mid-ranks (ties count half); NaN with one class only."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = mid_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def mid_ranks(values: FloatArray) -> FloatArray:
    """1-based ranks with ties sharing the mean of their positions (what rankdata's "average" method gives)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))  # 0-based position of each distinct value's first copy
    ranks: FloatArray = (first + (counts + 1) / 2.0)[inverse]
    return ranks


def expected_calibration_error(scores: FloatArray, positive: BoolArray, bins: int = CALIBRATION_BINS) -> float:
    """Weighted mean |observed positive rate - mean score| over equal-width score bins."""
    which = np.clip((scores * bins).astype(np.int64), 0, bins - 1)
    score_sum = np.bincount(which, weights=scores, minlength=bins)
    positive_sum = np.bincount(which, weights=positive.astype(np.float64), minlength=bins)
    return float(np.abs(positive_sum - score_sum).sum() / max(scores.size, 1))


@dataclass(frozen=True)
class MetricEstimate:
    value: float
    standard_error: float  # bootstrap, over the rows the value was computed on


def bootstrap_classification(c: Classes, resamples: int = 200, seed: int = 0) -> dict[str, MetricEstimate]:
    """Each classification metric with its bootstrap standard error (seeded: one dataset, one answer)."""
    point = classification_metrics(c)
    rng = np.random.default_rng(seed)
    draws = [classification_metrics(c.take(rng.integers(0, len(c), len(c)))) for _ in range(resamples)]
    return {name: MetricEstimate(value, _spread(draws, name)) for name, value in point.items()}


def bootstrap_regression(
    predicted: FloatArray, truth: FloatArray, resamples: int = 200, seed: int = 0
) -> dict[str, MetricEstimate]:
    point = regression_metrics(predicted, truth)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        rows = rng.integers(0, predicted.size, predicted.size)
        draws.append(regression_metrics(predicted[rows], truth[rows]))
    return {name: MetricEstimate(value, _spread(draws, name)) for name, value in point.items()}


def _spread(draws: list[dict[str, float]], name: str) -> float:
    values = [d[name] for d in draws if name in d]
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
