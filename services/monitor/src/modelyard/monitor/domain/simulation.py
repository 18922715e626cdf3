"""Seeded synthetic tabular data and the null-window calibration of the alarm policy.

Calibration answers "does the per-window alpha hold on this reference?": it draws null windows from a holdout of
the reference data (never from the stored sample itself, which would make every window look like the reference),
runs the real evaluation on each, and reports how often the model-level decision fired against the alpha it was
tested at. It is reproducible: the same reference, policy and seed give the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from modelyard.monitor.domain.evaluation import evaluate_window
from modelyard.monitor.domain.incidents import Signal
from modelyard.monitor.domain.policy import MonitorPolicy
from modelyard.monitor.domain.profile import ReferenceProfile
from modelyard.monitor.domain.sequential import CusumState
from modelyard.monitor.domain.windows import ClosedWindow, Columns, WindowId

LEVELS = ("a", "b", "c", "d", "e")
LEVEL_WEIGHTS = (0.4, 0.25, 0.2, 0.1, 0.05)


@dataclass(frozen=True)
class Shift:
    """An injected covariate change: mean shift (in SDs) and scale factor on some numeric features, and a new
    distribution (or unseen levels) on the categorical one."""

    numeric_features: tuple[int, ...] = ()
    mean_sd: float = 0.0
    scale: float = 1.0
    category_weights: tuple[float, ...] | None = None
    new_category_share: float = 0.0


@dataclass(frozen=True)
class TabularGenerator:
    """Correlated Gaussian numerics (equicorrelation `rho`), one categorical, and a logistic score output."""

    n_numeric: int = 8
    rho: float = 0.3
    coefficients: tuple[float, ...] = field(default=(0.8, -0.5, 0.3))

    def columns(self, rng: np.random.Generator, n: int, shift: Shift = Shift()) -> dict[str, npt.NDArray[np.generic]]:
        common = rng.standard_normal((n, 1))
        x = np.sqrt(self.rho) * common + np.sqrt(1 - self.rho) * rng.standard_normal((n, self.n_numeric))
        for j in shift.numeric_features:
            x[:, j] = x[:, j] * shift.scale + shift.mean_sd
        weights = np.asarray(shift.category_weights or LEVEL_WEIGHTS, dtype=np.float64)
        category = rng.choice(np.asarray(LEVELS), size=n, p=weights / weights.sum())
        if shift.new_category_share > 0:
            category[rng.random(n) < shift.new_category_share] = "unseen"
        logit = x[:, : len(self.coefficients)] @ np.asarray(self.coefficients)
        score = 1.0 / (1.0 + np.exp(-logit))
        columns: dict[str, npt.NDArray[np.generic]] = {f"x[{j}]": x[:, j] for j in range(self.n_numeric)}
        columns["segment"] = category
        columns["output:score"] = score
        return columns


def window_of(
    profile: ReferenceProfile, columns: Mapping[str, npt.NDArray[np.generic]], start: float = 0.0
) -> ClosedWindow:
    """A closed window of `columns` (named like the profile's features), one event per millisecond from `start`."""
    n = len(next(iter(columns.values())))
    numeric = {name: np.asarray(columns[name], dtype=np.float64) for name in profile.numeric}
    categorical = {name: np.asarray(columns[name]).astype(str) for name in profile.categorical}
    data = Columns(
        event_time=start + np.arange(n) / 1000.0,
        latency_ms=np.full(n, 5.0),
        status=np.zeros(n, dtype=np.int32),
        numeric=numeric,
        categorical=categorical,
        schema_violations=np.zeros(n, dtype=np.bool_),
    )
    return ClosedWindow(WindowId(int(start), 0), start, start + n / 1000.0, data, "count")


@dataclass(frozen=True)
class Calibration:
    windows: int
    window_size: int
    alpha: float  # the per-window alpha the windows were tested at
    data_drift_rate: float  # observed share of null windows whose model-level data drift decision fired
    prediction_drift_rate: float
    feature_breach_rate: float  # share of feature tests named as drifted


def calibrate(
    profile: ReferenceProfile,
    holdout: Mapping[str, npt.NDArray[np.generic]],
    policy: MonitorPolicy,
    *,
    windows: int,
    window_size: int,
    seed: int,
) -> Calibration:
    """Resample `windows` null windows of `window_size` rows from `holdout` and measure the false-breach rates."""
    rng = np.random.default_rng(seed)
    n_rows = len(next(iter(holdout.values())))
    fired = {Signal.DATA_DRIFT: 0, Signal.PREDICTION_DRIFT: 0}
    breached = tested = 0
    alpha = float("nan")
    for i in range(windows):
        rows = rng.integers(0, n_rows, size=window_size)
        window = window_of(profile, {k: np.asarray(v)[rows] for k, v in holdout.items()}, start=float(i * 3600))
        report, _ = evaluate_window(profile, window, policy, dict[str, CusumState]())
        alpha = report.alpha
        for signal in fired:
            fired[signal] += int(report.model_drift.get(signal, False))
        breached += sum(f.breached for f in report.features)
        tested += len(report.features)
    return Calibration(
        windows=windows,
        window_size=window_size,
        alpha=alpha,
        data_drift_rate=fired[Signal.DATA_DRIFT] / windows,
        prediction_drift_rate=fired[Signal.PREDICTION_DRIFT] / windows,
        feature_breach_rate=breached / max(tested, 1),
    )
