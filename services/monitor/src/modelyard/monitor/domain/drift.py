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

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import special

from modelyard.monitor.domain.profile import CategoricalProfile, FloatArray, IntArray, NumericProfile

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
    """Exact two-sample KS D = sup |F_ref - F_cur|, in O(m log n) for a window of m against n reference values.

    The supremum of two step functions is reached at a jump of one of them; between two consecutive window
    values F_cur is flat and F_ref monotone, so checking F_ref just before and at every window value (both with
    `searchsorted`) covers every interval, ties included.
    """
    cur = np.sort(current)
    return _ks_of_sorted(reference_sorted, cur, np.searchsorted(reference_sorted, cur, side="right"))


def _ks_of_sorted(reference_sorted: FloatArray, cur: FloatArray, at: npt.NDArray[np.intp]) -> float:
    """KS D of a sorted window `cur`, with `at` the reference values <= each window value."""
    n, m = reference_sorted.size, cur.size
    ref_at = at / n
    ref_before = np.searchsorted(reference_sorted, cur, side="left") / n
    cur_at = np.searchsorted(cur, cur, side="right") / m
    cur_before = np.searchsorted(cur, cur, side="left") / m
    return float(max(np.abs(ref_at - cur_at).max(), np.abs(ref_before - cur_before).max()))


def wasserstein_distance(reference_sorted: FloatArray, prefix_sums: FloatArray, current: FloatArray) -> float:
    """Exact W1 = integral |F_ref - F_cur| dx, in O(m log n) using the reference's prefix sums.

    With G(x) = integral of F_ref up to x = (k(x)·x - S_k(x)) / n (k(x) reference values <= x, S_k their sum),
    the integral over an interval where F_cur is the constant c splits where F_ref crosses c into two pieces
    whose integrals are differences of G.
    """
    cur = np.sort(current)
    return _wasserstein_of_sorted(reference_sorted, prefix_sums, cur, np.searchsorted(reference_sorted, cur, "right"))


def _wasserstein_of_sorted(
    ref: FloatArray, prefix_sums: FloatArray, cur: FloatArray, at: npt.NDArray[np.intp]
) -> float:
    """W1 of a sorted window `cur`, with `at` the reference values <= each window value."""
    n, m = ref.size, cur.size

    def integral_of_ref_cdf(x: FloatArray, k: npt.NDArray[np.intp] | None = None) -> FloatArray:
        k = np.searchsorted(ref, x, side="right") if k is None else k
        result: FloatArray = (k * x - prefix_sums[k]) / n
        return result

    # Left tail (F_cur = 0) and right tail (F_cur = 1).
    lo, hi = cur[0], cur[-1]
    total = float(integral_of_ref_cdf(np.array([lo]))[0])
    if ref[-1] > hi:
        g = integral_of_ref_cdf(np.array([hi, ref[-1]]))
        total += float((ref[-1] - hi) - (g[1] - g[0]))
    # Interior intervals [cur[j], cur[j+1]) where F_cur = (j + 1) / m.
    a, b = cur[:-1], cur[1:]
    level = np.arange(1, m) / m
    # Smallest x where F_ref(x) >= level is the ceil(level·n)-th reference value; clip it into [a, b].
    crossing_index = np.clip(np.ceil(level * n - 1e-12).astype(np.int64) - 1, 0, n - 1)
    x_star = np.clip(ref[crossing_index], a, b)
    g_a, g_x, g_b = integral_of_ref_cdf(a, at[:-1]), integral_of_ref_cdf(x_star), integral_of_ref_cdf(b, at[1:])
    below = level * (x_star - a) - (g_x - g_a)  # F_ref < level on [a, x*)
    above = (g_b - g_x) - level * (b - x_star)  # F_ref >= level on [x*, b)
    return total + float(below.sum() + above.sum())


def population_stability_index(profile: NumericProfile, current: FloatArray) -> float:
    counts = np.bincount(
        np.searchsorted(profile.bin_edges, current, side="right"), minlength=profile.bin_edges.size + 1
    )
    cur = np.maximum(counts / current.size, PSI_EPSILON)
    ref = np.maximum(profile.bin_proportions, PSI_EPSILON)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def numeric_drift(features: Mapping[str, NumericProfile], window: Mapping[str, FloatArray]) -> list[FeatureTest]:
    """KS, normed Wasserstein and PSI of every numeric feature (missing values are data quality, not drift)."""
    names: list[str] = []
    d: list[float] = []
    en: list[float] = []
    partial: list[tuple[str, float, float, int, int]] = []
    for name, profile in features.items():
        values = window[name]
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        n, m = profile.n, values.size
        names.append(name)
        cur = np.sort(values)
        at = np.searchsorted(profile.sorted_values, cur, side="right")  # shared by KS and W1
        d.append(_ks_of_sorted(profile.sorted_values, cur, at))
        en.append(n * m / (n + m))
        w1 = _wasserstein_of_sorted(profile.sorted_values, profile.prefix_sums, cur, at)
        # A constant reference has std 0: any move is then a full-size change, so normalise by 1 unit instead.
        normed = w1 / profile.std if profile.std > 0 else w1
        partial.append((name, normed, population_stability_index(profile, values), n, m))
    if not names:
        return []
    root_en = np.sqrt(np.maximum(np.asarray(en, dtype=np.float64), 1.0))
    p_values = np.clip(special.kolmogorov((root_en + 0.12 + 0.11 / root_en) * np.asarray(d)), 0.0, 1.0)
    return [
        FeatureTest(
            feature=name,
            statistic="ks",
            value=d_i,
            p_value=float(p),
            effect_size=normed,
            n_reference=n,
            n_current=m,
            effects={"wasserstein_normed": normed, "psi": psi},
        )
        for (name, normed, psi, n, m), d_i, p in zip(partial, d, p_values, strict=True)
    ]


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
