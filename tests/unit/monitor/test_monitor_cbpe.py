"""CBPE: the isotonic calibration against scikit-learn's, the expected accuracy and ROC AUC against the realised
ones under covariate shift, and the incident when the estimate falls below the baseline."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from modelyard.monitor.domain.cbpe import ESTIMATED_ACCURACY, ESTIMATED_ROC_AUC, estimate, isotonic_calibration
from modelyard.monitor.domain.evaluation import evaluate_window
from modelyard.monitor.domain.incidents import Severity, Signal
from modelyard.monitor.domain.policy import MonitorPolicy
from modelyard.monitor.domain.profile import build_profile
from modelyard.monitor.domain.simulation import window_of

pytestmark = pytest.mark.unit
POLICY = MonitorPolicy()


def scored(rng: np.random.Generator, n: int, confidence: float = 2.0) -> dict[str, np.ndarray]:
    """A model whose score is calibrated after a monotone distortion (score = sigmoid(logit)^2, truth ~ sigmoid)."""
    logit = rng.normal(0, confidence, n)
    p = 1 / (1 + np.exp(-logit))
    truth = (rng.random(n) < p).astype(np.int64)
    score = p**2  # miscalibrated, but monotone in p: isotonic recovers p
    return {
        "x": logit,
        "output:probabilities[1]": score,
        "output:label": (score > 0.25).astype(np.int64),
        "truth:label": truth,
    }


def test_isotonic_calibration_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(3000), 3)  # ties
    positive = rng.random(3000) < scores**2
    calibration = isotonic_calibration(scores, positive)
    reference = IsotonicRegression(out_of_bounds="clip").fit(scores, positive.astype(float))
    distinct = np.unique(scores)
    np.testing.assert_allclose(calibration(distinct), reference.predict(distinct), atol=1e-12)
    assert np.all(np.diff(calibration.y) > 0)


@pytest.mark.parametrize("confidence", [2.0, 0.7])  # the reference's spread, and a covariate shift to less confidence
def test_expected_performance_is_within_a_point_of_the_realised(confidence: float) -> None:
    profile = build_profile("m", 1, scored(np.random.default_rng(1), 20_000), source="t")
    assert profile.calibration is not None
    live = scored(np.random.default_rng(2), 20_000, confidence)
    got = estimate(profile.calibration, live["output:probabilities[1]"], live["output:label"] == 1)
    realised_accuracy = float((live["output:label"] == live["truth:label"]).mean())
    assert got[ESTIMATED_ACCURACY] == pytest.approx(realised_accuracy, abs=0.01)
    realised_auc = roc_auc_score(live["truth:label"], live["output:probabilities[1]"])
    assert got[ESTIMATED_ROC_AUC] == pytest.approx(realised_auc, abs=0.015)


def test_a_window_the_model_is_unsure_about_warns_before_any_label() -> None:
    profile = build_profile("m", 1, scored(np.random.default_rng(3), 20_000), source="t")
    steady, steady_outcomes = evaluate_window(
        profile, window_of(profile, scored(np.random.default_rng(4), 1000)), POLICY, {}
    )
    assert steady.estimated[ESTIMATED_ACCURACY] == pytest.approx(profile.baseline["accuracy"].value, abs=0.03)
    assert not any(o.breached for o in steady_outcomes if o.key.signal is Signal.PERFORMANCE)
    unsure = window_of(profile, scored(np.random.default_rng(5), 1000, confidence=0.5), start=10.0)
    report, outcomes = evaluate_window(profile, unsure, POLICY, {})
    (outcome,) = [o for o in outcomes if o.key.signal is Signal.PERFORMANCE]
    assert outcome.breached and outcome.key.feature == ESTIMATED_ACCURACY
    assert outcome.severity is Severity.WARNING  # an estimate warns; realised performance rolls back
    assert outcome.evidence[0].effect_size == pytest.approx(
        profile.baseline["accuracy"].value - report.estimated[ESTIMATED_ACCURACY]
    )
