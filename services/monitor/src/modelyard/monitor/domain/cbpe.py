"""Performance before labels: confidence-based performance estimation (CBPE) for binary classifiers.

On the reference rows (the model's scores and the truth) the positive-class score is calibrated by isotonic
regression (pool-adjacent-violators, checked against scikit-learn's IsotonicRegression), so that a calibrated score
c is the probability that the row is positive. In a window without labels, each prediction is then right with
probability c (predicted positive) or 1 - c (predicted negative): the expected accuracy is their mean, and the
expected ROC AUC follows from the expected true and false positives above every score threshold. The estimate
holds while the relation between score and truth holds (covariate shift, not concept drift): that is what the
labels, once they arrive, check.

A window breaches when the expected accuracy is below the baseline by at least the minimum effect and a one-sided
z-test (variance: the estimate's, sum c(1-c)/n^2, plus the baseline's SE^2) rejects at the window's share of the
performance family's budget. An estimate is never critical: it rests on the model's own confidence, so it warns
and leaves rollbacks to the realised performance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import special  # not scipy.stats: ~70 MB of imports for one normal tail

from modelyard.monitor.domain.incidents import Evidence, IncidentKey, Outcome, Severity
from modelyard.monitor.domain.metrics import BoolArray, FloatArray, IntArray, MetricEstimate

ESTIMATED_ACCURACY = "estimated_accuracy"
ESTIMATED_ROC_AUC = "estimated_roc_auc"


@dataclass(frozen=True, eq=False)
class Calibration:
    """A non-decreasing step function from score to P(positive): `y[i]` for scores from `x[i]` on, fitted on `n[i]`
    reference rows (the isotonic block's size; None in profiles stored before it was kept, and for a truth of more
    than two classes, where being right is not being on the calibrated side of the score)."""

    x: FloatArray
    y: FloatArray
    n: FloatArray | None = None

    def __call__(self, scores: FloatArray) -> FloatArray:
        result: FloatArray = self.y[self._blocks(scores)]
        return result

    def p_right_lower_bound(self, scores: FloatArray, predicted_positive: BoolArray) -> FloatArray:
        """Each prediction's probability of being right, at its block's one-sided `BLOCK_CONFIDENCE` lower bound
        (Clopper-Pearson on the block's rows): the positive rate's lower bound for a positive prediction, one less
        its upper bound for a negative one. Needs `n`."""
        assert self.n is not None, "a calibration without block sizes has no confidence bounds"
        lower, upper = _block_bounds(self.y, self.n)
        blocks = self._blocks(scores)
        result: FloatArray = np.where(predicted_positive, lower[blocks], 1.0 - upper[blocks])
        return result

    def _blocks(self, scores: FloatArray) -> IntArray:
        blocks: IntArray = np.clip(np.searchsorted(self.x, scores, side="right") - 1, 0, self.y.size - 1)
        return blocks


# How sure the lower bound of a block's probability of being right is (degradation.py's likelihood-ratio CUSUM).
BLOCK_CONFIDENCE = 0.95


def _block_bounds(y: FloatArray, n: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Clopper-Pearson one-sided bounds of each block's positive rate (k = y n positives of n rows)."""
    k = np.round(y * n)
    alpha = 1.0 - BLOCK_CONFIDENCE
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(k > 0, special.betaincinv(k, n - k + 1, alpha), 0.0)
        upper = np.where(k < n, special.betaincinv(k + 1, n - k, 1.0 - alpha), 1.0)
    return lower, upper


def isotonic_calibration(scores: FloatArray, positive: BoolArray, *, sizes: bool = True) -> Calibration:
    """Least-squares isotonic fit of the 0/1 outcome on the score (pool adjacent violators over the distinct scores);
    with the blocks' sizes unless `sizes` is false."""
    distinct, inverse = np.unique(scores, return_inverse=True)
    weights = np.bincount(inverse).astype(np.float64)
    means = np.bincount(inverse, weights=positive.astype(np.float64)) / weights
    # Blocks as a stack of (mean, weight, first distinct score index); merge while the order is violated.
    block_mean: list[float] = []
    block_weight: list[float] = []
    block_start: list[int] = []
    for i, (m, w) in enumerate(zip(means.tolist(), weights.tolist(), strict=True)):
        block_mean.append(m)
        block_weight.append(w)
        block_start.append(i)
        while len(block_mean) > 1 and block_mean[-2] >= block_mean[-1]:
            w2, m2 = block_weight.pop(), block_mean.pop()
            block_start.pop()
            total = block_weight[-1] + w2
            block_mean[-1] = (block_mean[-1] * block_weight[-1] + m2 * w2) / total
            block_weight[-1] = total
    return Calibration(
        distinct[block_start].astype(np.float64),
        np.asarray(block_mean, dtype=np.float64),
        np.asarray(block_weight, dtype=np.float64) if sizes else None,
    )


def estimate(calibration: Calibration, scores: FloatArray, predicted_positive: BoolArray) -> dict[str, float]:
    """Expected accuracy and ROC AUC of predictions whose truth is not known yet."""
    kept = np.isfinite(scores)
    if not kept.any():
        return {}
    c = calibration(scores[kept])
    result = {ESTIMATED_ACCURACY: float(_p_correct(calibration, scores, predicted_positive).mean())}
    order = np.argsort(-scores[kept], kind="stable")
    tp, fp = np.cumsum(c[order]), np.cumsum(1.0 - c[order])
    if tp[-1] > 0 and fp[-1] > 0:
        tpr = np.concatenate(([0.0], tp / tp[-1]))
        fpr = np.concatenate(([0.0], fp / fp[-1]))
        result[ESTIMATED_ROC_AUC] = float(np.trapezoid(tpr, fpr))
    return result


def estimate_outcome(
    key: IncidentKey,
    estimated: Mapping[str, float],
    variance: float,
    baseline: MetricEstimate,
    min_drop: float,
    alpha: float,
    n: int,
    window: tuple[float, float],
) -> Outcome:
    """The expected accuracy against the baseline accuracy: breached when it is lower by at least `min_drop` and
    the one-sided z-test rejects at `alpha`."""
    drop = baseline.value - estimated[ESTIMATED_ACCURACY]
    standard_error = math.sqrt(variance + baseline.standard_error**2)
    p_value = float(special.ndtr(-drop / standard_error)) if standard_error > 0 else float(drop <= 0)
    if p_value > alpha or drop < min_drop:
        return Outcome(key, False)
    evidence = Evidence(ESTIMATED_ACCURACY, "cbpe_z", drop, p_value, alpha, drop, 0, n, *window)
    return Outcome(key, True, Severity.WARNING, (evidence,))


def estimate_variance(calibration: Calibration, scores: FloatArray, predicted_positive: BoolArray) -> float:
    """Variance of the expected accuracy as an estimate of the window's accuracy: sum c(1-c) / n^2."""
    correct = _p_correct(calibration, scores, predicted_positive)
    return float((correct * (1.0 - correct)).sum() / correct.size**2) if correct.size else math.inf


def _p_correct(calibration: Calibration, scores: FloatArray, predicted_positive: BoolArray) -> FloatArray:
    """Each scored prediction's probability of being right."""
    kept = np.isfinite(scores)
    c = calibration(scores[kept])
    result: FloatArray = np.where(predicted_positive[kept], c, 1.0 - c)
    return result
