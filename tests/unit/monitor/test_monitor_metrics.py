"""Performance metrics against scikit-learn's, and the reference baseline with its bootstrap standard error."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from modelyard.monitor.domain.metrics import (
    bootstrap_classification,
    classes,
    classification_metrics,
    expected_calibration_error,
    regression_metrics,
)
from modelyard.monitor.domain.profile import build_profile

pytestmark = pytest.mark.unit


def _classified(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    score = np.clip(0.5 * truth + rng.normal(0.25, 0.25, n), 0, 1)
    score[:10] = 0.5  # ties
    return truth, score, (score >= 0.5).astype(int)


def test_classification_metrics_match_scikit_learn() -> None:
    truth, score, predicted = _classified(2000, 0)
    got = classification_metrics(classes(predicted.astype(str), truth.astype(str), score, "1"))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(truth, predicted))
    assert got["precision"] == pytest.approx(skm.precision_score(truth, predicted))
    assert got["recall"] == pytest.approx(skm.recall_score(truth, predicted))
    assert got["f1"] == pytest.approx(skm.f1_score(truth, predicted))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(truth, score))
    assert got["log_loss"] == pytest.approx(skm.log_loss(truth, score))
    # scikit-learn's calibration_curve drops empty bins and averages per bin; weighting by bin size gives the ECE.
    which = np.clip((score * 10).astype(int), 0, 9)
    ece = sum(abs(truth[which == b].mean() - score[which == b].mean()) * (which == b).mean() for b in np.unique(which))
    assert got["calibration_error"] == pytest.approx(ece)
    assert expected_calibration_error(np.full(4, 0.75), np.array([True, True, True, False])) == pytest.approx(0.0)


def test_metrics_undefined_on_the_data_are_left_out() -> None:
    one_class = classes(np.array(["0", "0"]), np.array(["0", "0"]), np.array([np.nan, np.nan]), "1")
    assert classification_metrics(one_class) == {"accuracy": 1.0}
    assert classification_metrics(classes(np.array([], dtype=str), np.array([], dtype=str), np.array([]), "1")) == {}


def test_regression_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(10, 3, 500)
    truth[:5] = 0.0  # MAPE skips zero targets
    predicted = truth + rng.normal(0, 1, 500)
    got = regression_metrics(predicted, truth)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(truth, predicted))
    assert got["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(truth, predicted)))
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(truth[5:], predicted[5:]))


def test_bootstrap_standard_error_of_accuracy_is_the_binomial_one() -> None:
    truth, score, predicted = _classified(4000, 2)
    estimates = bootstrap_classification(classes(predicted.astype(str), truth.astype(str), score, "1"))
    p = estimates["accuracy"].value
    assert estimates["accuracy"].standard_error == pytest.approx(math.sqrt(p * (1 - p) / 4000), rel=0.15)
    assert set(estimates) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "calibration_error"}


def test_the_baseline_comes_from_the_references_outputs_and_truth() -> None:
    truth, score, predicted = _classified(1000, 3)
    columns = {
        "x[0]": score + 1.0,
        "output:label": predicted,  # numeric class codes, as a CSV gives them
        "output:probabilities[1]": score,
        "truth:label": truth,
    }
    profile = build_profile("m", 1, columns, source="test")
    assert profile.baseline["accuracy"].value == pytest.approx(skm.accuracy_score(truth, predicted))
    assert profile.baseline["roc_auc"].value == pytest.approx(skm.roc_auc_score(truth, score))
    assert 0 < profile.baseline["accuracy"].standard_error < 0.05
    restored = type(profile).from_bytes(profile.to_bytes())
    assert restored.baseline == profile.baseline and restored.id == profile.id
    regression = build_profile(
        "r", 1, {"x": truth * 1.0, "output:variable": score, "truth:variable": truth}, source="t"
    )
    assert set(regression.baseline) == {"mae", "rmse", "mape"}
    assert build_profile("n", 1, {"x": score}, source="t").baseline == {}
