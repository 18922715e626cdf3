"""Two-sample drift tests of one window against the frozen reference profile, vectorised with numpy.

Numeric: Kolmogorov-Smirnov D computed exactly against the whole stored reference sample (no sketch), with the
p-value of the Kolmogorov distribution at the effective size en = n·m/(n+m) with Stephens' (1970) small-sample
correction, Q((sqrt(en) + 0.12 + 0.11/sqrt(en)) D): within a few percent of the exact distribution and cheap
(scipy.special; scipy.stats takes seconds to import). Effect sizes are the Wasserstein-1 distance divided by the
reference standard deviation and the population stability index on the reference's quantile bins. Categorical: Pearson's
chi-square on the 2 x K contingency table reference-vs-window (rare levels merged into "other", unseen levels
land there too), with the Jensen-Shannon distance and total variation as effect sizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from modelyard.monitor.domain.metrics import FloatArray, IntArray
from modelyard.monitor.domain.profile import CategoricalProfile, NumericProfile

# Floor for bin proportions in PSI: an empty bin would make the log ratio infinite.
PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class FeatureTest:
    """One feature's test in one window; `effect_size` is the one compared with the configured floor."""

    feature: str
    statistic: str
    value: float
    p_value: float
    effect_size: float
    n_reference: int
    n_current: int
    effects: Mapping[str, float] = field(default_factory=dict)


def ks_statistic(reference_sorted: FloatArray, current: FloatArray) -> float:
    """Exact two-sample KS D = sup |F_ref - F_cur|, in O(m log n) for a window of m against n reference values."""
    d, _ = _ks_and_wasserstein([reference_sorted], [_prefix_sums(reference_sorted)], np.sort(current)[None, :])
    return float(d[0])


def wasserstein_distance(reference_sorted: FloatArray, prefix_sums: FloatArray, current: FloatArray) -> float:
    """Exact W1 = integral |F_ref - F_cur| dx, in O(m log n) using the reference's prefix sums."""
    _, w1 = _ks_and_wasserstein([reference_sorted], [prefix_sums], np.sort(current)[None, :])
    return float(w1[0])


def _ks_and_wasserstein(
    references: Sequence[FloatArray], prefix_sums: Sequence[FloatArray], cur: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """KS D and W1 of F features at once: row f of `cur` (F x m, each row sorted) against `references[f]` (sorted,
    n_f values; `prefix_sums[f][i]` the sum of its first i). Only the reference lookups loop over the features;
    the rest is one numpy operation per step for the whole window, which is what makes a window of many features
    cheap (per-feature loops spent their time in numpy's per-call overhead, not in arithmetic).

    KS: the supremum of two step functions is reached at a jump of one of them; between two consecutive window
    values F_cur is flat and F_ref monotone, so F_ref just before and at every window value covers every interval,
    ties included. W1: with G(x) = integral of F_ref up to x = (k(x)·x - S_k(x)) / n (k(x) reference values <= x,
    S_k their sum), the integral over an interval where F_cur is the constant c splits where F_ref crosses c into
    two pieces whose integrals are differences of G.
    """
    features, m = cur.shape
    n = np.array([r.size for r in references], dtype=np.int64)[:, None]
    at = np.empty((features, m), dtype=np.int64)  # reference values <= each window value
    before = np.empty((features, m), dtype=np.int64)  # ... < each window value
    level = np.arange(1, m) / m  # F_cur on [cur[j], cur[j + 1])
    # Smallest x where F_ref(x) >= level is the ceil(level·n)-th reference value; clipped into [a, b] below.
    crossing_index = np.clip(np.ceil(level * n - 1e-12).astype(np.int64) - 1, 0, n - 1)
    crossing = np.empty((features, m - 1))
    crossing_tied = np.empty((features, m - 1), dtype=np.bool_)  # the crossing value recurs after its index
    ref_last = np.empty((features, 1))
    for f, ref in enumerate(references):
        # One binary search per feature: the other two lookups follow from it unless values tie (then searched).
        at[f] = np.searchsorted(ref, cur[f], side="right")
        tied = (at[f] > 0) & (ref[np.maximum(at[f] - 1, 0)] == cur[f])
        before[f] = np.searchsorted(ref, cur[f], side="left") if tied.any() else at[f]
        crossing[f] = ref[crossing_index[f]]
        crossing_tied[f] = ref[np.minimum(crossing_index[f] + 1, ref.size - 1)] == crossing[f]
        crossing_tied[f] &= crossing_index[f] + 1 < ref.size
        ref_last[f] = ref[-1]
    a, b = cur[:, :-1], cur[:, 1:]
    x_star = np.clip(crossing, a, b)
    # Reference values <= x*: x* is a window value where clipped (`at` has it), else the crossing value itself,
    # which has crossing_index + 1 of them unless it recurs (then searched).
    k_star = np.where(crossing <= a, at[:, :-1], np.where(crossing >= b, at[:, 1:], crossing_index + 1))
    inside = (crossing > a) & (crossing < b)
    sum_at, sum_star, sum_all = np.empty((features, m)), np.empty((features, m - 1)), np.empty((features, 1))
    for f, (ref, sums) in enumerate(zip(references, prefix_sums, strict=True)):
        if (inside[f] & crossing_tied[f]).any():
            k_star[f] = np.searchsorted(ref, x_star[f], side="right")
        sum_at[f], sum_star[f], sum_all[f] = sums[at[f]], sums[k_star[f]], sums[-1]

    # KS. A window value's rank among the window's own values: the end (<=) and start (<) of its run of ties.
    index = np.arange(m)
    tie_next = np.zeros((features, m), dtype=np.bool_)
    tie_next[:, :-1] = b == a
    run_end = np.minimum.accumulate(np.where(tie_next, m, index)[:, ::-1], axis=1)[:, ::-1] + 1
    tie_before = np.zeros((features, m), dtype=np.bool_)
    tie_before[:, 1:] = tie_next[:, :-1]
    run_start = np.maximum.accumulate(np.where(tie_before, 0, index), axis=1)
    d = np.maximum(np.abs(at / n - run_end / m).max(axis=1), np.abs(before / n - run_start / m).max(axis=1))

    # W1. Left tail (F_cur = 0), right tail (F_cur = 1), then the interior intervals.
    g_at = (at * cur - sum_at) / n  # G at every window value
    total = g_at[:, 0]
    g_last = (n * ref_last - sum_all) / n
    right_tail = (ref_last - cur[:, -1:]) - (g_last - g_at[:, -1:])
    total = np.where(ref_last[:, 0] > cur[:, -1], total + right_tail[:, 0], total)
    g_a, g_b, g_x = g_at[:, :-1], g_at[:, 1:], (k_star * x_star - sum_star) / n
    below = level * (x_star - a) - (g_x - g_a)  # F_ref < level on [a, x*)
    above = (g_b - g_x) - level * (b - x_star)  # F_ref >= level on [x*, b)
    w1: FloatArray = total + (below.sum(axis=1) + above.sum(axis=1))
    return d, w1


def _prefix_sums(values: FloatArray) -> FloatArray:
    return np.concatenate(([0.0], np.cumsum(values)))


def population_stability_index(profile: NumericProfile, current: FloatArray) -> float:
    counts = np.bincount(
        np.searchsorted(profile.bin_edges, current, side="right"), minlength=profile.bin_edges.size + 1
    )
    cur = np.maximum(counts / current.size, PSI_EPSILON)
    ref = np.maximum(profile.bin_proportions, PSI_EPSILON)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def numeric_drift(features: Mapping[str, NumericProfile], window: Mapping[str, FloatArray]) -> list[FeatureTest]:
    """KS, normed Wasserstein and PSI of every numeric feature (missing values are data quality, not drift). The
    features with as many finite values in the window (all of them, unless some values are missing) are tested
    together (`_ks_and_wasserstein`)."""
    by_size: dict[int, list[tuple[str, NumericProfile, FloatArray]]] = {}
    for name, profile in features.items():
        values = window[name]
        values = values[np.isfinite(values)]
        if values.size:
            by_size.setdefault(values.size, []).append((name, profile, values))
    tests: dict[str, FeatureTest] = {}
    for group in by_size.values():
        profiles = [p for _, p, _ in group]
        cur = np.sort(np.stack([v for _, _, v in group]), axis=1)
        d, w1 = _ks_and_wasserstein([p.sorted_values for p in profiles], [p.prefix_sums for p in profiles], cur)
        n, m = np.array([p.n for p in profiles], dtype=np.float64), cur.shape[1]
        en = n * m / (n + m)
        root_en = np.sqrt(np.maximum(en, 1.0))
        p_values = np.clip(special.kolmogorov((root_en + 0.12 + 0.11 / root_en) * d), 0.0, 1.0)
        for (name, profile, _), row, d_i, w1_i, p in zip(
            group, cur, d.tolist(), w1.tolist(), p_values.tolist(), strict=True
        ):
            # A constant reference has std 0: any move is then a full-size change, so normalise by 1 unit instead.
            normed = w1_i / profile.std if profile.std > 0 else w1_i
            psi = population_stability_index(profile, row)  # sorted: the same counts, found faster
            tests[name] = FeatureTest(
                feature=name,
                statistic="ks",
                value=d_i,
                p_value=p,
                effect_size=normed,
                n_reference=profile.n,
                n_current=m,
                effects={"wasserstein_normed": normed, "psi": psi},
            )
    return [tests[name] for name in features if name in tests]


def categorical_drift(profile: CategoricalProfile, feature: str, codes: IntArray) -> FeatureTest | None:
    """Chi-square test of homogeneity of the window's bucket counts against the reference's."""
    if codes.size == 0:
        return None
    ref_counts = profile.counts.astype(np.float64)
    cur_counts = np.bincount(codes, minlength=ref_counts.size).astype(np.float64)
    table = np.vstack([ref_counts, cur_counts])
    table = table[:, table.sum(axis=0) > 0]  # a bucket empty on both sides carries no information
    ref_p = table[0] / table[0].sum()
    cur_p = table[1] / table[1].sum()
    if table.shape[1] < 2:
        chi2, p_value = 0.0, 1.0
    else:
        expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
        chi2 = float(np.sum((table - expected) ** 2 / expected))
        p_value = float(special.chdtrc(table.shape[1] - 1, chi2))
    mid = 0.5 * (ref_p + cur_p)
    js = float(np.sqrt(max(0.5 * (_kl(ref_p, mid) + _kl(cur_p, mid)), 0.0)))
    return FeatureTest(
        feature=feature,
        statistic="chi2",
        value=chi2,
        p_value=p_value,
        effect_size=js,
        n_reference=int(table[0].sum()),
        n_current=int(table[1].sum()),
        effects={"jensen_shannon": js, "total_variation": float(0.5 * np.abs(ref_p - cur_p).sum())},
    )


def _kl(p: FloatArray, q: FloatArray) -> float:
    """Kullback-Leibler divergence in bits; 0·log 0 = 0 (q > 0 wherever p > 0 for a mixture q)."""
    mask = p > 0
    return float(np.sum(p[mask] * np.log2(p[mask] / q[mask])))
