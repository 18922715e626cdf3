"""Performance decay from labels: is the model worse than on its reference by at least the policy's minimum effect?

Two tests on the per-example error stream of the labelled predictions (1/0 misclassification, or the absolute
error of a value), both against the baseline measured on the reference (`ReferenceProfile.baseline`):

- a one-sided CUSUM tuned to the minimum effect: on errors standardised by the baseline's per-example standard
  deviation, the reference value k is half the minimum effect (the optimal k for detecting exactly that shift),
  and h comes from Siegmund's ARL approximation at the false alarms per week the budget allows, so it answers as
  soon as the evidence of a decay of at least that size is in, whatever the window boundaries;
- a label-window test: every `window_labels` labels, a one-sided z-test of the window's mean error against the
  baseline, whose variance adds the window's sampling variance and the baseline's own (its bootstrap standard
  error), at the per-window alpha the same weekly budget gives (`decision.per_window_alpha`). A window breaches
  when the test rejects and the observed decay is at least the minimum effect, or when the CUSUM went over h
  (then it is capped at h: a persisting decay keeps breaching, an ended one stops).

The two, with the CBPE estimate (cbpe.py), share the performance family's third of the budget equally.
Breaches go through the same k-of-m incident book as drift; the severity follows the size of the decay: critical
from `critical_*` on (reached at 95% confidence by the window's decay), so the shipped rollback rule can act on
a large drop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from modelyard.monitor.domain import decision
from modelyard.monitor.domain.evaluation import PERFORMANCE_TESTS, STATISTICAL_FAMILIES
from modelyard.monitor.domain.incidents import Evidence, IncidentKey, Outcome, Severity, Signal
from modelyard.monitor.domain.metrics import FloatArray
from modelyard.monitor.domain.policy import WEEK_S, MonitorPolicy
from modelyard.monitor.domain.profile import ReferenceProfile
from modelyard.monitor.domain.sequential import one_sided_path, siegmund_threshold
from modelyard.monitor.domain.state import LabelWindow, VersionState

# One-sided 95%: how sure a decay must be of its size to be critical.
CRITICAL_CONFIDENCE_Z = float(stats.norm.ppf(0.95))


@dataclass(frozen=True)
class LabelWindowResult:
    """A label window that filled: its id (incident ids derive from it), its realised metric and the outcome."""

    window: str
    metric: str
    value: float  # accuracy, or MAE
    outcome: Outcome


@dataclass(frozen=True)
class Baseline:
    """What the error stream is tested against: the metric, the per-example error's mean and standard deviation on
    the reference, the standard error of that mean, and the decays (in error units) that matter and that are
    critical."""

    metric: str  # "accuracy" or "mae": what the incident is about
    mean: float
    std: float
    standard_error: float
    min_effect: float
    critical_effect: float

    @classmethod
    def of(cls, profile: ReferenceProfile, policy: MonitorPolicy) -> Baseline | None:
        """None when the reference has no outputs and truth: then there is nothing to measure decay against."""
        p = policy.performance
        if (accuracy := profile.baseline.get("accuracy")) is not None:
            error = 1.0 - accuracy.value
            std = math.sqrt(max(error * (1.0 - error), 1e-6))
            return cls("accuracy", error, std, accuracy.standard_error, p.min_accuracy_drop, p.critical_accuracy_drop)
        if (mae := profile.baseline.get("mae")) is not None and profile.baseline_error is not None:
            std = max(profile.baseline_error[1], 1e-9)
            mean = mae.value
            return cls(
                "mae", mean, std, mae.standard_error, p.min_error_increase * mean, p.critical_error_increase * mean
            )
        return None

    def decay(self, mean_error: float) -> float:
        """How much worse the model is, in the metric's units (accuracy points lost, MAE gained)."""
        return mean_error - self.mean


def observe_errors(
    state: VersionState, profile: ReferenceProfile, errors: FloatArray, times: FloatArray, policy: MonitorPolicy
) -> list[LabelWindowResult]:
    """Advance the version's CUSUM and label window over the labelled predictions' errors (in arrival order, with
    their predictions' event times); a result per label window that filled."""
    baseline = Baseline.of(profile, policy)
    if baseline is None or errors.size == 0:
        return []
    window_labels = policy.performance.window_labels
    outcomes = []
    start = 0
    while start < errors.size:
        take = min(window_labels - state.labels.n, errors.size - start)
        _advance(state, baseline, errors[start : start + take], times[start : start + take], policy)
        start += take
        if state.labels.n >= window_labels:
            outcomes.append(_close(state, baseline, policy))
    return outcomes


def _advance(
    state: VersionState, baseline: Baseline, errors: FloatArray, times: FloatArray, policy: MonitorPolicy
) -> None:
    z = (errors - baseline.mean) / baseline.std
    path = one_sided_path(state.error_cusum, z - _k(baseline))
    state.error_cusum = float(path[-1])
    peak = float(path.max())
    if peak > _h(state, baseline, policy):
        state.error_alarm = max(state.error_alarm or 0.0, peak)
    w = state.labels
    state.labels = LabelWindow(
        w.n + int(errors.size),
        w.error_sum + float(errors.sum()),
        min(w.first, float(times.min())),
        max(w.last, float(times.max())),
    )


def _k(baseline: Baseline) -> float:
    return baseline.min_effect / baseline.std / 2.0


def _h(state: VersionState, baseline: Baseline, policy: MonitorPolicy) -> float:
    # Labels arrive no faster than predictions: the prediction rate bounds the values a week from above.
    values_per_week = max(state.records_per_second, 1.0) * WEEK_S
    allowed = policy.alarm.false_incidents_per_week / STATISTICAL_FAMILIES / PERFORMANCE_TESTS
    return siegmund_threshold(_k(baseline), values_per_week / allowed)


def _close(state: VersionState, baseline: Baseline, policy: MonitorPolicy) -> LabelWindowResult:
    w = state.labels
    mean_error = w.error_sum / w.n
    value = 1.0 - mean_error if baseline.metric == "accuracy" else mean_error
    window = f"labels:{state.label_windows}"
    state.labels = LabelWindow()
    state.label_windows += 1
    alarm, state.error_alarm = state.error_alarm, None
    key = IncidentKey(state.model_name, state.model_version, Signal.PERFORMANCE, baseline.metric)
    decay = baseline.decay(mean_error)
    standard_error = math.sqrt(baseline.std**2 / w.n + baseline.standard_error**2)
    p_value = float(stats.norm.sf(decay / standard_error))
    # The labels took at least as long as the predictions they are about: the fastest the windows can come.
    duration = w.n / max(state.records_per_second, 1e-9)
    alpha = decision.per_window_alpha(policy.alarm, duration, STATISTICAL_FAMILIES * PERFORMANCE_TESTS)
    evidence = []
    if p_value <= alpha and decay >= baseline.min_effect:
        evidence.append(Evidence(baseline.metric, "z_decay", decay, p_value, alpha, decay, 0, w.n, w.first, w.last))
    if alarm is not None:
        h = _h(state, baseline, policy)
        # Capped at h rather than kept: a decay that persists crosses again within the next window, one that has
        # ended stops breaching at once, instead of after the long climb down from its peak.
        state.error_cusum = min(state.error_cusum, h)
        evidence.append(Evidence(baseline.metric, "cusum_up", alarm, math.nan, h, decay, 0, w.n, w.first, w.last))
    if not evidence:
        return LabelWindowResult(window, baseline.metric, value, Outcome(key, False))
    # Critical when the decay is at least the critical one with 95% confidence, not merely in a noisy estimate.
    critical = decay - CRITICAL_CONFIDENCE_Z * standard_error >= baseline.critical_effect
    severity = Severity.CRITICAL if critical else Severity.WARNING
    return LabelWindowResult(window, baseline.metric, value, Outcome(key, True, severity, tuple(evidence)))
