"""Decisions on seeded synthetic data: null windows stay quiet, real shifts are caught and the right features named."""

import numpy as np
import pytest

from modelyard.monitor.domain.evaluation import evaluate_window
from modelyard.monitor.domain.incidents import (
    MODEL_LEVEL,
    Change,
    IncidentBook,
    IncidentKey,
    Outcome,
    Severity,
    Signal,
)
from modelyard.monitor.domain.policy import AlarmPolicy, MonitorPolicy
from modelyard.monitor.domain.profile import ReferenceProfile, build_profile
from modelyard.monitor.domain.sequential import CusumState
from modelyard.monitor.domain.simulation import Shift, TabularGenerator, calibrate, window_of

pytestmark = pytest.mark.unit
GENERATOR = TabularGenerator()
POLICY = MonitorPolicy()


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return build_profile("credit", 1, GENERATOR.columns(np.random.default_rng(0), 20_000), source="test")


def run(profile: ReferenceProfile, shift: Shift, windows: int, seed: int) -> tuple[list[set[str]], IncidentBook, list]:
    rng = np.random.default_rng(seed)
    book, changes, named = IncidentBook(POLICY.alarm), [], []
    cusum: dict[str, CusumState] = {}
    for i in range(windows):
        window = window_of(profile, GENERATOR.columns(rng, 1000, shift), start=i * 60.0)
        report, outcomes = evaluate_window(profile, window, POLICY, cusum)
        named.append({f.test.feature for f in report.features if f.breached})
        changes += [c for o in outcomes if (c := book.observe(o, str(window.id))) is not None]
    return named, book, changes


def test_null_windows_raise_nothing(profile: ReferenceProfile) -> None:
    named, book, changes = run(profile, Shift(), windows=30, seed=1)
    assert not any(named)
    assert changes == [] and book.trackers == {}


def test_mean_shift_on_two_features_opens_one_model_incident_that_names_exactly_them(
    profile: ReferenceProfile,
) -> None:
    named, _, changes = run(profile, Shift(numeric_features=(4, 6), mean_sd=0.5), windows=3, seed=2)
    assert all(n == {"x[4]", "x[6]"} for n in named)  # features 4..7 do not feed the score
    (opened,) = [c for c in changes if c.change is Change.OPENED]
    assert (opened.key.signal, opened.key.feature) == (Signal.DATA_DRIFT, MODEL_LEVEL)
    assert {e.feature for e in opened.evidence} == {"x[4]", "x[6]"}
    p_values = [e.p_value for e in opened.evidence]
    assert p_values == sorted(p_values)  # most significant first
    for evidence in opened.evidence:
        assert evidence.statistic == "ks" and evidence.p_value < evidence.threshold and evidence.n_current == 1000
    assert opened.severity is Severity.CRITICAL  # effect 0.5 SD >= 3 x the 0.1 floor


def windows_of(profile: ReferenceProfile, shifts: list[Shift], seed: int) -> list[Outcome]:
    """The model-level data drift outcome of one window per shift."""
    rng = np.random.default_rng(seed)
    outcomes = []
    for i, shift in enumerate(shifts):
        _, window_outcomes = evaluate_window(
            profile, window_of(profile, GENERATOR.columns(rng, 1000, shift), start=i * 60.0), POLICY, {}
        )
        outcomes += [o for o in window_outcomes if o.key.signal is Signal.DATA_DRIFT]
    return outcomes


def test_breaches_of_different_features_count_towards_one_incident(profile: ReferenceProfile) -> None:
    # The k-of-m rule counts the model's breaches, as the per-window alpha assumes: a drift that shows in x[4] in
    # one window and in x[6] in the next is one incident after two windows, not two features each waiting for a
    # second breach of their own.
    outcomes = windows_of(profile, [Shift((4,), mean_sd=0.5), Shift((6,), mean_sd=0.5)], seed=6)
    assert [(o.key.feature, o.breached) for o in outcomes] == [(MODEL_LEVEL, True), (MODEL_LEVEL, True)]
    assert [[e.feature for e in o.evidence] for o in outcomes] == [["x[4]"], ["x[6]"]]
    book = IncidentBook(POLICY.alarm)
    changes = [book.observe(o, str(i)) for i, o in enumerate(outcomes)]
    assert changes[0] is None and changes[1] is not None and changes[1].change is Change.OPENED


def test_a_model_incident_is_as_severe_as_its_most_moved_feature(profile: ReferenceProfile) -> None:
    # Effects of 0.2 SD are warnings (over the 0.1 floor, under 3 x it), 1 SD is critical.
    (mild,) = windows_of(profile, [Shift((4,), mean_sd=0.2)], seed=8)
    assert mild.breached and mild.severity is Severity.WARNING
    rng = np.random.default_rng(9)
    columns = GENERATOR.columns(rng, 1000, Shift((4,), mean_sd=0.2))
    columns["x[6]"] = columns["x[6]"] + 1.0
    _, outcomes = evaluate_window(profile, window_of(profile, columns), POLICY, {})
    (mixed,) = [o for o in outcomes if o.key.signal is Signal.DATA_DRIFT]
    assert [e.feature for e in mixed.evidence] == ["x[6]", "x[4]"]
    assert mixed.severity is Severity.CRITICAL


def test_shift_of_a_score_input_also_shows_as_prediction_drift(profile: ReferenceProfile) -> None:
    named, _, changes = run(profile, Shift(numeric_features=(0,), mean_sd=0.5), windows=2, seed=3)
    assert all({"x[0]", "output:score"} <= n for n in named)
    assert any(c.key.signal is Signal.PREDICTION_DRIFT for c in changes)


def test_categorical_shift_and_new_levels(profile: ReferenceProfile) -> None:
    shift = Shift(category_weights=(0.2, 0.25, 0.2, 0.25, 0.1), new_category_share=0.05)
    named, _, changes = run(profile, shift, windows=2, seed=4)
    assert all(n == {"segment"} for n in named)
    quality = [c for c in changes if c.key.signal is Signal.DATA_QUALITY]
    assert [(c.key.feature, c.evidence[0].statistic) for c in quality] == [("segment", "new_category_rate")]


def test_tiny_shift_is_significant_but_under_the_effect_floor(profile: ReferenceProfile) -> None:
    big_window_policy = MonitorPolicy(alarm=AlarmPolicy(numeric_effect_floor=0.2))
    rng = np.random.default_rng(5)
    window = window_of(profile, GENERATOR.columns(rng, 20_000, Shift(numeric_features=(5,), mean_sd=0.1)))
    report, _ = evaluate_window(profile, window, big_window_policy, {})
    x5 = next(f for f in report.features if f.test.feature == "x[5]")
    assert x5.test.p_value < report.alpha and not x5.breached


def test_null_calibration_stays_within_alpha(profile: ReferenceProfile) -> None:
    holdout = GENERATOR.columns(np.random.default_rng(99), 20_000)
    result = calibrate(profile, holdout, POLICY, windows=40, window_size=500, seed=7)
    assert result.data_drift_rate <= max(3 * result.alpha, 0.05)
    assert result.feature_breach_rate == 0.0


def test_incident_lifecycle_k_of_m_update_and_resolve() -> None:
    book = IncidentBook(AlarmPolicy(open_after=2, open_within=3, resolve_after=2))
    k = IncidentKey("m", 1, Signal.DATA_DRIFT, "x")
    breach, clean = Outcome(k, True, Severity.WARNING), Outcome(k, False)
    sequence = [breach, clean, breach, Outcome(k, True, Severity.CRITICAL), breach, clean, clean, clean]
    changes = [book.observe(o, f"w{i}") for i, o in enumerate(sequence)]
    kinds = [c.change if c else None for c in changes]
    assert kinds == [None, None, Change.OPENED, Change.UPDATED, None, None, Change.RESOLVED, None]
    assert changes[2] and changes[3] and changes[2].incident_id == changes[3].incident_id
    replay = IncidentBook(AlarmPolicy(open_after=2, open_within=3, resolve_after=2))
    again = [replay.observe(o, f"w{i}") for i, o in enumerate(sequence)]
    assert [c.event_id if c else None for c in again] == [c.event_id if c else None for c in changes]
    assert book.trackers == {}
