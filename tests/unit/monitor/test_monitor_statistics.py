"""The statistics against scipy's reference implementations, on small seeded samples."""

import numpy as np
import pytest
from scipy import stats

from modelyard.monitor.domain import decision
from modelyard.monitor.domain.drift import categorical_drift, ks_statistic, numeric_drift, wasserstein_distance
from modelyard.monitor.domain.metrics import mid_ranks
from modelyard.monitor.domain.policy import AlarmPolicy
from modelyard.monitor.domain.profile import OTHER, ProfileOptions, ReferenceProfile, build_profile
from modelyard.monitor.domain.sequential import (
    CusumState,
    bernoulli_arl,
    bernoulli_score,
    bernoulli_threshold,
    cusum,
    one_sided_path,
    siegmund_threshold,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        (np.random.default_rng(1).normal(size=3000), np.random.default_rng(2).normal(0.2, 1.3, size=300)),
        (np.random.default_rng(3).integers(0, 5, 800).astype(float), np.random.default_rng(4).integers(0, 7, 90)),
        (np.random.default_rng(5).normal(size=40), np.random.default_rng(6).normal(6, 1, size=15)),
        (np.random.default_rng(7).normal(size=40), np.random.default_rng(8).normal(-6, 1, size=15)),
    ],
)
def test_ks_and_wasserstein_are_exact(reference: np.ndarray, current: np.ndarray) -> None:
    ref = np.sort(reference)
    prefix = np.concatenate(([0.0], np.cumsum(ref)))
    current = current.astype(float)
    assert ks_statistic(ref, current) == pytest.approx(stats.ks_2samp(reference, current).statistic, abs=1e-12)
    assert wasserstein_distance(ref, prefix, current) == pytest.approx(
        stats.wasserstein_distance(reference, current), rel=1e-9
    )


def test_features_tested_together_match_each_tested_alone() -> None:
    """numeric_drift tests a window's features in one pass; row f must only ever see feature f's reference, whatever
    the features' reference sizes (the gappy one has fewer), ties (discrete, constant, resampled values) and
    missing values."""
    rng = np.random.default_rng(21)
    reference = {
        "normal": rng.normal(size=5000),
        "shifted": rng.normal(2, 3, size=5000),
        "discrete": rng.integers(0, 5, 5000).astype(float),
        "constant": np.full(5000, 2.0),
        "gappy": np.where(rng.random(5000) < 0.3, np.nan, rng.exponential(size=5000)),
    }
    profile = build_profile("m", 1, reference, source="test")
    window = {
        "normal": rng.normal(0.3, 1, 400),
        "shifted": rng.choice(reference["shifted"], 400),  # values shared with the reference
        "discrete": rng.integers(0, 7, 400).astype(float),
        "constant": np.where(rng.random(400) < 0.5, 2.0, 3.0),
        "gappy": np.where(rng.random(400) < 0.1, np.nan, rng.exponential(1.5, 400)),  # fewer finite values
    }
    together = numeric_drift(profile.numeric, window)
    alone = [numeric_drift({name: p}, {name: window[name]})[0] for name, p in profile.numeric.items()]
    assert [t.feature for t in together] == list(profile.numeric)
    assert together == alone  # exactly: the same floating-point operations row by row


@pytest.mark.parametrize(("shift", "n_ref", "n_cur"), [(0.0, 20_000, 500), (0.1, 20_000, 500), (0.3, 2_000, 60)])
def test_numeric_p_value_is_close_to_the_exact_ks_distribution(shift: float, n_ref: int, n_cur: int) -> None:
    rng = np.random.default_rng(11)
    reference = rng.normal(size=n_ref)
    window = rng.normal(shift, 1, size=n_cur)
    profile = build_profile("m", 1, {"x": reference}, source="test")
    (result,) = numeric_drift(profile.numeric, {"x": window})
    d = stats.ks_2samp(reference, window).statistic
    exact = stats.kstwo.sf(d, round(n_ref * n_cur / (n_ref + n_cur)))  # what ks_2samp reports for large samples
    assert result.value == pytest.approx(d)
    assert result.p_value == pytest.approx(exact, rel=0.05, abs=1e-3)
    assert result.effects["psi"] > 0


def test_categorical_test_matches_scipy_and_buckets_rare_and_unseen_levels() -> None:
    rng = np.random.default_rng(12)
    reference = rng.choice(["a", "b", "c", "rare"], p=[0.5, 0.3, 0.195, 0.005], size=10_000)
    profile = build_profile("m", 1, {"segment": reference}, source="test")
    cat = profile.categorical["segment"]
    assert cat.levels == ("a", "b", "c", OTHER) and cat.rare_levels == {"rare"}
    window = np.array(["a"] * 200 + ["b"] * 150 + ["c"] * 100 + ["rare"] * 5 + ["new"] * 45)
    codes, unseen = cat.codes(window)
    assert unseen == 45
    result = categorical_drift(cat, "segment", codes)
    assert result is not None
    table = np.vstack([cat.counts, np.bincount(codes, minlength=4)])
    chi2, p, *_ = stats.chi2_contingency(table, correction=False)
    assert result.value == pytest.approx(chi2) and result.p_value == pytest.approx(p)
    assert 0 < result.effects["total_variation"] <= 1 and 0 < result.effect_size <= 1


def test_profile_round_trips_and_its_id_is_its_content() -> None:
    rng = np.random.default_rng(13)
    columns = {"x[0]": rng.normal(size=70_000), "segment": rng.choice(["a", "b"], size=70_000)}
    profile = build_profile("m", 3, columns, source="file:ref.csv", options=ProfileOptions(seed=1))
    assert profile.numeric["x[0]"].n == 50_000  # sampled down to the cap
    again = ReferenceProfile.from_bytes(profile.to_bytes())
    assert (
        again.id
        == profile.id
        == build_profile("m", 3, columns, source="file:ref.csv", options=ProfileOptions(seed=1)).id
    )
    assert np.array_equal(again.numeric["x[0]"].prefix_sums, profile.numeric["x[0]"].prefix_sums)
    assert build_profile("m", 3, columns, source="file:ref.csv", options=ProfileOptions(seed=2)).id != profile.id


def test_mid_ranks_match_scipy() -> None:
    values = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0])
    assert mid_ranks(values).tolist() == stats.rankdata(values).tolist()


def test_holm_and_bh_match_their_definitions() -> None:
    p = [0.001, 0.012, 0.02, 0.04, 0.5]
    # Holm at 0.05: 0.001 <= 0.01, 0.012 <= 0.0125, 0.02 > 0.0167 stops.
    assert decision.holm_rejections(p, 0.05).tolist() == [True, True, False, False, False]
    # BH at 0.05: thresholds 0.01, 0.02, 0.03, 0.04, 0.05 -> largest rank with p <= threshold is 4.
    rejected, thresholds = decision.benjamini_hochberg(p, 0.05)
    assert rejected.tolist() == [True, True, True, True, False]
    assert thresholds.tolist() == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05])


def test_alpha_follows_the_weekly_budget() -> None:
    policy = AlarmPolicy(false_incidents_per_week=1.0, open_after=2, open_within=3)
    alpha = decision.per_window_alpha(policy, window_seconds=60.0, families=3)
    # 10080 windows a week, 1/3 incident each family: 2 alpha^2 x 10080 = 1/3.
    assert 2 * alpha**2 * 10_080 == pytest.approx(1 / 3)


def test_vectorised_cusum_equals_the_recursion() -> None:
    rng = np.random.default_rng(14)
    z = rng.normal(0.1, 1, size=500)
    state, alarm = cusum(CusumState(0.7, 0.2), z, k=0.25, h=1e9)
    upper, lower = 0.7, 0.2
    for value in z:
        upper, lower = max(0.0, upper + value - 0.25), max(0.0, lower - value - 0.25)
    assert alarm is None
    assert (state.upper, state.lower) == pytest.approx((upper, lower))


def test_cusum_threshold_holds_its_run_length_and_catches_a_shift() -> None:
    rng = np.random.default_rng(15)
    h = siegmund_threshold(0.5, 2000.0)
    # Two-sided on N(0, 1): about one false alarm per 1000 values; 20 x 500 values should see about 10.
    alarms = sum(cusum(CusumState(), rng.normal(size=500), 0.5, h)[1] is not None for _ in range(20))
    assert alarms <= 12
    _, alarm = cusum(CusumState(), rng.normal(1.0, 1, size=500), 0.5, h)
    assert alarm is not None and alarm.direction == "up" and alarm.index < 60


def test_bernoulli_cusum_run_length_is_exact() -> None:
    # r: the log-likelihood ratios of a mistake and a correct answer, 0.1 -> 0.2 error: log 2 / log(0.9 / 0.8).
    assert bernoulli_score(0.1, 0.2) == round(np.log(2) / np.log(0.9 / 0.8)) == 6
    # Small enough to check by simulation: at 0.3 errors, +2/-1 to 8 (the Markov chain solved exactly).
    rng = np.random.default_rng(16)
    runs = []
    for _ in range(100):
        mistakes = rng.random(20_000) < 0.3
        path = one_sided_path(0.0, np.where(mistakes, 2.0, -1.0))
        runs.append(int(np.flatnonzero(path >= 8)[0]) + 1)
    expected = bernoulli_arl(0.3, 2, 8)
    assert abs(np.mean(runs) - expected) < 4 * np.std(runs) / np.sqrt(len(runs))
    # h is the smallest integer that reaches the ARL asked for.
    h = bernoulli_threshold(0.1, 6, 1e6)
    assert bernoulli_arl(0.1, 6, h) >= 1e6 > bernoulli_arl(0.1, 6, h - 1)
