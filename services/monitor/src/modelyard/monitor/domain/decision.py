"""From a false-alarm budget in time to per-window decisions: alpha, Holm for the model, BH to name features.

Under the null, windows are (nearly) independent, so an incident opening at a given window needs a breach there
and k-1 more among the m-1 before it: P(open) ~= C(m-1, k-1) alpha^k. Setting windows-per-week x P(open) to the
weekly budget (shared equally by the statistical signal families) gives the per-window alpha. Holm's step-down
test over the features is the model-level decision (it controls the family-wise error at alpha); Benjamini-
Hochberg at the same alpha names which features drifted (it controls the false discovery rate among them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from modelyard.monitor.domain.policy import WEEK_S, AlarmPolicy

# Never test at a looser level than this, however rare windows are: a breach must still be surprising.
MAX_ALPHA = 0.05


def per_window_alpha(policy: AlarmPolicy, window_seconds: float, families: int) -> float:
    """Per-window significance level of one signal family for windows lasting `window_seconds` on average."""
    windows_per_week = WEEK_S / max(window_seconds, 1e-3)
    per_family = policy.false_incidents_per_week / max(families, 1)
    open_rate = per_family / windows_per_week  # allowed P(an incident opens at a given window)
    k, m = policy.open_after, policy.open_within
    return float(min(MAX_ALPHA, (open_rate / math.comb(m - 1, k - 1)) ** (1.0 / k)))


def holm_rejections(p_values: Sequence[float], alpha: float) -> np.ndarray:
    """Holm-Bonferroni step-down: reject the i-th smallest p while p_(i) <= alpha / (F - i), stop at the first miss."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    thresholds = alpha / (p.size - np.arange(p.size))
    passed = p[order] <= thresholds
    n_rejected = p.size if passed.all() else int(np.argmin(passed))
    rejected = np.zeros(p.size, dtype=bool)
    rejected[order[:n_rejected]] = True
    return rejected


def benjamini_hochberg(p_values: Sequence[float], alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """BH step-up: reject the r smallest p where r is the largest rank with p_(r) <= r alpha / F.

    Returns the rejections and each feature's own BH threshold (rank x alpha / F), reported as evidence.
    """
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    ranks = np.empty(p.size, dtype=np.int64)
    ranks[order] = np.arange(1, p.size + 1)
    thresholds = ranks * alpha / max(p.size, 1)
    below = np.nonzero(p[order] <= thresholds[order])[0]
    rejected = np.zeros(p.size, dtype=bool)
    if below.size:
        rejected[order[: below[-1] + 1]] = True
    return rejected, thresholds
