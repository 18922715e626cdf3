"""Performance decay from labels: the Bernoulli CUSUM tuned to the minimum effect, the label-window test, their
budget and the severity that follows the size of the drop."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.monitor.domain.degradation import Baseline, observe_errors
from modelyard.monitor.domain.evaluation import PERFORMANCE_TESTS
from modelyard.monitor.domain.incidents import Change, IncidentChange, Severity
from modelyard.monitor.domain.policy import WEEK_S, MonitorPolicy
from modelyard.monitor.domain.profile import ReferenceProfile, build_profile
from modelyard.monitor.domain.sequential import bernoulli_score, bernoulli_threshold
from modelyard.monitor.domain.state import VersionState

pytestmark = pytest.mark.unit
POLICY = MonitorPolicy()
RATE = 100.0  # predictions per second, in event time


def classifier_reference(accuracy: float, n: int = 5000, seed: int = 0) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    predicted = rng.integers(0, 2, n)
    wrong = rng.random(n) >= accuracy
    truth = np.where(wrong, 1 - predicted, predicted)
    return build_profile("m", 1, {"x": rng.normal(size=n), "output:label": predicted, "truth:label": truth}, source="t")


def run(profile: ReferenceProfile, errors: np.ndarray, chunk: int = 250) -> list[tuple[int, IncidentChange]]:
    """Feed the errors in chunks as batches of labels would come; (labels seen, change) for every incident change."""
    state = VersionState.new("m", 1, POLICY)
    state.records_per_second = RATE
    changes = []
    for start in range(0, errors.size, chunk):
        part = errors[start : start + chunk]
        times = 1.7e9 + (start + np.arange(part.size)) / RATE
        for closed in observe_errors(state, profile, part, times, POLICY):
            if (change := state.book.observe(closed.outcome, closed.window)) is not None:
                changes.append((start + part.size, change))
    return changes


def stream(rng: np.random.Generator, error_rates: list[tuple[int, float]]) -> np.ndarray:
    return np.concatenate([(rng.random(n) < rate).astype(np.float64) for n, rate in error_rates])


def test_the_baseline_and_the_cusum_are_tuned_to_the_minimum_effect() -> None:
    profile = classifier_reference(0.945)
    baseline = Baseline.of(profile, POLICY)
    assert baseline is not None and baseline.metric == "accuracy"
    assert baseline.mean == pytest.approx(1 - profile.baseline["accuracy"].value)
    assert baseline.min_effect == POLICY.performance.min_accuracy_drop
    # The Bernoulli CUSUM for the error rate rising by the minimum drop; h spends a third of the performance
    # family's third of the weekly budget at the prediction rate (the label-window test and CBPE have the others).
    r = bernoulli_score(baseline.mean, baseline.mean + baseline.min_effect)
    allowed = POLICY.alarm.false_incidents_per_week / 3 / PERFORMANCE_TESTS
    h = bernoulli_threshold(baseline.mean, r, RATE * WEEK_S / allowed)
    state = VersionState.new("m", 1, POLICY)
    state.records_per_second = RATE
    below = (h - 1) // r  # mistakes in a row that stay under h
    assert observe_errors(state, profile, np.ones(below), np.zeros(below), POLICY) == []
    assert state.error_cusum == below * r
    # The next mistake crosses: the label window closes there with a decisive breach (no k-of-m), capped at h.
    (closed,) = observe_errors(state, profile, np.ones(5), np.arange(5.0), POLICY)
    assert closed.outcome.breached and closed.outcome.decisive
    assert "cusum_up" in {e.statistic for e in closed.outcome.evidence}
    assert state.labels.n == 4 and state.error_cusum == pytest.approx(h + 4 * r)  # the rest of the batch goes on
    opened = state.book.observe(closed.outcome, closed.window)
    assert opened is not None and opened.change is Change.OPENED
    assert Baseline.of(build_profile("n", 1, {"x": np.arange(10.0)}, source="t"), POLICY) is None


def test_a_null_stream_opens_nothing() -> None:
    profile = classifier_reference(0.945)
    rng = np.random.default_rng(1)
    assert run(profile, stream(rng, [(60_000, 1 - profile.baseline["accuracy"].value)])) == []


def test_a_three_point_drop_opens_a_warning_within_3000_labels() -> None:
    profile = classifier_reference(0.945)
    error = 1 - profile.baseline["accuracy"].value
    changes = run(profile, stream(np.random.default_rng(2), [(5000, error), (6000, error + 0.03)]))
    (labels_seen, opened), *_ = changes
    assert opened.change is Change.OPENED and opened.key.feature == "accuracy"
    assert opened.severity is Severity.WARNING
    assert labels_seen - 5000 <= 3000
    assert {e.statistic for e in opened.evidence} <= {"cusum_up", "z_decay"}


def test_a_large_drop_is_critical_and_recovery_resolves_it() -> None:
    profile = classifier_reference(0.9)
    error = 1 - profile.baseline["accuracy"].value
    changes = run(profile, stream(np.random.default_rng(3), [(2000, error), (1500, error + 0.15), (8000, error)]))
    kinds = [(c.change, c.severity) for _, c in changes]
    assert kinds[0] == (Change.OPENED, Severity.CRITICAL)
    assert kinds[-1][0] is Change.RESOLVED
    # A 15-point drop crosses h within about 600 labels; the window closes there, and is critical on its own.
    labels_seen, opened = changes[0]
    assert labels_seen <= 2000 + 1000
    cusum_up, z_decay = (next(e for e in opened.evidence if e.statistic == s) for s in ("cusum_up", "z_decay"))
    assert cusum_up.n_current < POLICY.performance.window_labels and cusum_up.value >= cusum_up.threshold
    assert z_decay.effect_size >= POLICY.performance.critical_accuracy_drop and z_decay.p_value < 1e-3


def test_regression_decay_is_relative_to_the_reference_mae() -> None:
    rng = np.random.default_rng(4)
    truth = rng.normal(10, 2, 5000)
    profile = build_profile(
        "r", 1, {"x": truth, "output:variable": truth + rng.normal(0, 1, 5000), "truth:variable": truth}, source="t"
    )
    baseline = Baseline.of(profile, POLICY)
    assert baseline is not None and baseline.metric == "mae"
    assert baseline.min_effect == pytest.approx(0.1 * profile.baseline["mae"].value)
    errors = np.abs(np.concatenate([rng.normal(0, 1, 3000), rng.normal(0, 2, 3000)]))
    (_, opened), *_ = run(profile, errors)
    assert opened.key.feature == "mae" and opened.severity is Severity.CRITICAL  # the MAE doubled


def evenly(n: int, rate: float) -> np.ndarray:
    """n labels with mistakes spread evenly at `rate`: a decay of exactly known size, with no sampling luck."""
    i = np.arange(n + 1, dtype=np.float64)
    return np.diff(np.floor(i * rate)).astype(np.float64)


def test_the_labels_since_the_change_are_those_after_the_cusums_last_zero() -> None:
    profile = classifier_reference(0.945)
    state = VersionState.new("m", 1, POLICY)
    state.records_per_second = RATE
    observe_errors(state, profile, np.zeros(100), np.arange(100.0), POLICY)
    assert state.error_cusum == 0.0 and state.since_change.n == 0  # in control: no change to date
    observe_errors(state, profile, np.array([0.0, 1.0, 0.0, 1.0]), np.arange(100.0, 104.0), POLICY)
    assert state.since_change.n == 3 and state.since_change.error_sum == 2.0  # from the first mistake on
    assert (state.since_change.first, state.since_change.last) == (101.0, 103.0)
    observe_errors(state, profile, np.zeros(200), np.arange(104.0, 304.0), POLICY)
    assert state.error_cusum == 0.0 and state.since_change.n == 0  # back at zero: that was noise


def test_an_incident_opened_as_a_warning_escalates_to_critical_with_the_labels_since_the_change() -> None:
    profile = classifier_reference(0.945)
    error = 1 - profile.baseline["accuracy"].value
    # 6.2 points lost: the ~750 labels to the CUSUM's crossing are not sure it is beyond the critical 5 points, and
    # no 500-label window ever is; the ~1,250 labels since the change by the next window are.
    errors = np.concatenate([evenly(3000, error), evenly(5000, error + 0.062)])
    changes = run(profile, errors)
    (_, opened), (labels_seen, escalated), *_ = changes
    assert (opened.change, opened.severity) == (Change.OPENED, Severity.WARNING)
    assert (escalated.change, escalated.severity) == (Change.UPDATED, Severity.CRITICAL)
    assert escalated.incident_id == opened.incident_id  # the same incident, now critical: governance can act
    since = next(e for e in escalated.evidence if e.statistic == "decay_since_change")
    assert since.n_current > POLICY.performance.window_labels and since.threshold == 0.05
    assert since.value == pytest.approx(0.062, abs=0.005) and since.window_start >= 1.7e9 + 3000 / RATE - 1
    assert labels_seen - 3000 <= 2000
