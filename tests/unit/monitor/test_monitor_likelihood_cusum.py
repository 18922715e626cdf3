"""The likelihood-ratio CUSUM of a binary classifier's labelled outcomes given their calibrated probability of being
right: its false-alarm rate on a healthy model, its indifference to covariate shift, its speed on label noise, and
the fall-back to the Bernoulli CUSUM when the profile has no block sizes."""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pytest

from modelyard.monitor.domain.cbpe import Calibration
from modelyard.monitor.domain.degradation import MAX_ROW_EVIDENCE, Baseline, observe_errors
from modelyard.monitor.domain.evaluation import PERFORMANCE_TESTS, STATISTICAL_FAMILIES
from modelyard.monitor.domain.incidents import Change
from modelyard.monitor.domain.policy import WEEK_S, MonitorPolicy
from modelyard.monitor.domain.profile import ReferenceProfile, build_profile
from modelyard.monitor.domain.sequential import one_sided_path
from modelyard.monitor.domain.state import VersionState

pytestmark = pytest.mark.unit
POLICY = MonitorPolicy()
RATE = 100.0  # predictions per second, in event time


def rows(rng: np.random.Generator, n: int, scale: float = 1.0, flip: float = 0.0) -> dict[str, np.ndarray]:
    """A calibrated logistic classifier's rows: score = P(positive | x), class = score > 1/2; the features scaled by
    `scale` (covariate shift: the same concept), a share `flip` of the truths flipped (label noise: concept drift)."""
    x = rng.standard_normal((n, 2)) * scale
    p = 1 / (1 + np.exp(-(4.0 * x[:, 0] - 2.0 * x[:, 1])))
    truth = (rng.random(n) < p).astype(np.int64)
    truth = np.where(rng.random(n) < flip, 1 - truth, truth)
    return {
        "x[0]": x[:, 0],
        "x[1]": x[:, 1],
        "output:label": (p > 0.5).astype(np.int64),
        "output:probabilities[1]": p,
        "truth:label": truth,
    }


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return build_profile("m", 1, rows(np.random.default_rng(100), 20_000), source="t")


def errors(data: dict[str, np.ndarray]) -> np.ndarray:
    return (data["output:label"] != data["truth:label"]).astype(np.float64)


def incidents(profile: ReferenceProfile, data: dict[str, np.ndarray], batch: int = 250) -> list[int]:
    """Labels seen when each performance incident opened, fed in batches as the handler would."""
    state = VersionState.new("m", 1, POLICY)
    state.records_per_second = RATE
    scores, positive, wrong = data["output:probabilities[1]"], data["output:label"] == 1, errors(data)
    opened = []
    for start in range(0, wrong.size, batch):
        part = slice(start, start + batch)
        times = 1.7e9 + np.arange(start, min(start + batch, wrong.size)) / RATE
        for closed in observe_errors(state, profile, wrong[part], times, POLICY, scores[part], positive[part]):
            change = state.book.observe(closed.outcome, closed.window)
            if change is not None and change.change is Change.OPENED:
                opened.append(start + times.size)
    return opened


def test_the_likelihood_ratio_cusum_applies_to_a_calibrated_binary_classifier(profile: ReferenceProfile) -> None:
    baseline = Baseline.of(profile, POLICY)
    assert baseline is not None and baseline.calibration is profile.calibration
    accuracy = profile.baseline["accuracy"].value
    # Label noise at eps costs eps (2A - 1) accuracy points: exactly the minimum drop.
    assert baseline.noise * (2 * accuracy - 1) == pytest.approx(POLICY.performance.min_accuracy_drop)
    assert baseline.threshold(5e8) == pytest.approx(math.log(5e8))
    # One mistake, however confident the prediction, adds at most ln 20; a right answer takes some away.
    steps = baseline.increments(np.array([1.0, 0.0]), np.array([0.9999, 0.9999]), np.array([True, True]))
    assert 0 < steps[0] <= MAX_ROW_EVIDENCE and steps[1] < 0


def test_a_null_stream_alarms_no_more_often_than_the_threshold_promises(profile: ReferenceProfile) -> None:
    baseline = Baseline.of(profile, POLICY)
    assert baseline is not None
    data = rows(np.random.default_rng(1), 250_000)
    arl0 = 10.0
    h = baseline.threshold(arl0)
    steps = baseline.increments(errors(data), data["output:probabilities[1]"], data["output:label"] == 1)
    alarms, start = 0, 0
    while (crossed := np.flatnonzero(one_sided_path(0.0, steps[start:]) >= h)).size:
        alarms, start = alarms + 1, start + int(crossed[0]) + 1  # restart from zero after each alarm
    assert alarms <= steps.size / arl0
    # The statistic does climb on a healthy model: this budget is small enough to be spent now and then.
    assert alarms > 0


def test_a_covariate_shift_that_keeps_the_concept_does_not_alarm_though_accuracy_falls(
    profile: ReferenceProfile,
) -> None:
    # Features shrunk to 60%: the predictions are less confident and the accuracy falls by several points, but every
    # score still means what it meant on the reference, so the model has not decayed.
    data = rows(np.random.default_rng(2), 50_000, scale=0.6)
    assert profile.baseline["accuracy"].value - (1 - errors(data).mean()) > 0.05
    arl0 = RATE * WEEK_S / (POLICY.alarm.false_incidents_per_week / STATISTICAL_FAMILIES / PERFORMANCE_TESTS)
    assert _peak(profile, data) < Baseline.of(profile, POLICY).threshold(arl0)  # type: ignore[union-attr]
    # The 0/1 mistakes alone cannot tell this from decay: the Bernoulli CUSUM of an older profile crosses.
    older = _without_block_sizes(profile)
    assert _peak(older, data) >= Baseline.of(older, POLICY).threshold(arl0)  # type: ignore[union-attr]


def _peak(profile: ReferenceProfile, data: dict[str, np.ndarray]) -> float:
    """The highest the profile's performance CUSUM climbs on the stream, from zero."""
    baseline = Baseline.of(profile, POLICY)
    assert baseline is not None
    steps = baseline.increments(errors(data), data["output:probabilities[1]"], data["output:label"] == 1)
    return float(one_sided_path(0.0, steps).max())


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_three_points_of_label_noise_are_detected_well_within_3000_labels(profile: ReferenceProfile, seed: int) -> None:
    rng = np.random.default_rng(seed)
    flip = 0.03 / (2 * profile.baseline["accuracy"].value - 1)
    before, after = rows(rng, 5_000), rows(rng, 6_000, flip=flip)
    data = {k: np.concatenate([before[k], after[k]]) for k in before}
    first, *_ = incidents(profile, data)
    assert 5_000 < first <= 5_000 + 2_000


def test_rows_without_a_score_count_with_the_reference_accuracy(profile: ReferenceProfile) -> None:
    baseline = Baseline.of(profile, POLICY)
    assert baseline is not None
    wrong = np.array([1.0, 0.0, 1.0])
    unscored = baseline.increments(wrong, None, None)
    nan = baseline.increments(wrong, np.full(3, np.nan), np.ones(3, dtype=bool))
    np.testing.assert_array_equal(unscored, nan)
    assert np.all(np.isfinite(unscored)) and unscored[0] > 0 > unscored[1]
    # A reference without a single mistake still leaves room for one: finite steps, a mistake capped.
    perfect = rows(np.random.default_rng(7), 2_000)
    perfect["truth:label"] = perfect["output:label"]
    flawless = Baseline.of(build_profile("m", 1, perfect, source="t"), POLICY)
    assert flawless is not None and flawless.calibration is not None
    with np.errstate(all="raise"):  # no division by a zero error rate
        steps = flawless.increments(wrong, None, None)
    assert steps[0] == pytest.approx(MAX_ROW_EVIDENCE) and np.all(np.isfinite(steps))


def test_a_profile_without_block_sizes_falls_back_to_the_bernoulli_cusum(profile: ReferenceProfile) -> None:
    stored = ReferenceProfile.from_bytes(profile.to_bytes())
    assert stored.calibration is not None and stored.calibration.n is not None and stored.id == profile.id
    older = _without_block_sizes(profile)
    assert older.calibration is not None and older.calibration.n is None
    baseline = Baseline.of(older, POLICY)
    assert baseline is not None and baseline.calibration is None
    assert float(baseline.threshold(5e8)).is_integer()  # the Bernoulli CUSUM's integer h
    # The same mistakes move the two statistics by different steps: the fallback is in use, and it still runs.
    state = VersionState.new("m", 1, POLICY)
    state.records_per_second = RATE
    observe_errors(state, older, np.array([1.0]), np.array([0.0]), POLICY, np.array([0.7]), np.array([True]))
    assert state.error_cusum == baseline.increments(np.array([1.0]), None, None)[0] >= 1


def test_a_multiclass_reference_keeps_no_block_sizes() -> None:
    rng = np.random.default_rng(6)
    data = {
        "x": rng.normal(size=300),
        "output:label": rng.integers(0, 3, 300),
        "output:probabilities[1]": rng.random(300),
        "truth:label": rng.integers(0, 3, 300),
    }
    profile = build_profile("m", 1, data, source="t")
    assert profile.calibration is not None and profile.calibration.n is None
    baseline = Baseline.of(profile, POLICY)
    assert baseline is not None and baseline.calibration is None


def _without_block_sizes(profile: ReferenceProfile) -> ReferenceProfile:
    """The profile as it was stored before block sizes were kept (its bytes without them)."""
    assert profile.calibration is not None
    older = dataclasses.replace(profile, calibration=Calibration(profile.calibration.x, profile.calibration.y))
    loaded = ReferenceProfile.from_bytes(older.to_bytes())
    with np.load(io.BytesIO(older.to_bytes())) as arrays:
        assert "calibration_n" not in arrays
    return loaded
