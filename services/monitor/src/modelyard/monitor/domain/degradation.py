"""Performance decay from labels: is the model worse than on its reference by at least the policy's minimum effect?

Two tests on the labelled predictions, both against the reference (`ReferenceProfile.baseline`):

- a one-sided CUSUM tuned to the minimum effect, with its threshold h from the false alarms per week the budget
  allows at the prediction rate (its in-control run length ARL0 = the labels a week / its share of the budget):
  - a binary classifier whose profile has an isotonic calibration with its blocks' sizes: the likelihood-ratio
    CUSUM on each row's outcome given its own probability q of being right, below;
  - any other classifier (multiclass, no scores, a profile stored before the block sizes were kept, until
    re-baselined): the Bernoulli CUSUM on the 0/1 mistakes for a rise of the error rate from the baseline's p0 to
    p0 + the minimum drop, h exact from its Markov chain (`sequential.bernoulli_threshold`);
  - a regressor's absolute errors, standardised by the baseline's per-example standard deviation: k = half the
    minimum effect, h from Siegmund's ARL approximation.
  Its h already spends its share of the budget in time, so its first crossing opens an incident by itself (a
  decisive outcome, no k-of-m) at the label where it happens: the label window closes there. It is then capped at
  h, and a label window breaches through it when it closes at or over h: while the decay persists the evidence
  keeps growing from h, once it has ended it falls away at once, instead of after the long climb down from its peak;
- a label-window test: every `window_labels` labels, a one-sided z-test of the window's mean error against the
  baseline, whose variance adds the window's sampling variance and the baseline's own (its bootstrap standard
  error), at the per-window alpha the same weekly budget gives (`decision.per_window_alpha`), through the k-of-m
  rule like every window test. It breaches when the test rejects and the observed decay is at least the minimum
  effect.

Why a likelihood ratio: the 0/1 mistakes alone carry little evidence of a few points of decay (a 3-point drop from
88% is ~0.004 nats a label, so ~4,000 labels to reach h ~ 20 at 1 false incident a week at 100 predictions/s).
A mistake on a prediction the model was sure of says much more than one on a coin flip: with each row's calibrated
probability q of being right (the reference's isotonic calibration of the score), the null is right ~ Bernoulli(q)
and the alternative is symmetric label noise at rate eps = min drop / (2 A - 1), A the reference accuracy (so the
expected accuracy falls by the minimum drop: E[2q - 1] = 2A - 1), under which right ~ Bernoulli(q - eps (2q - 1)).
The increment is the row's log-likelihood ratio, and h = ln(ARL0) (`sequential.likelihood_ratio_threshold`: the
run length is at least e^h under the null). The null must hold for real, though the calibration is estimated:
- q is each isotonic block's one-sided 95% lower bound (Clopper-Pearson on its reference rows), not its mean: a
  block that happened to be right more often than its true rate would otherwise drift the statistic upward on a
  healthy model, and a confident block with no mistake on the reference would make one live mistake decisive.
  With q at or below the truth, E[exp(increment)] <= 1 and the ARL0 bound still holds;
- q is at least 1/2: a row whose bound says it may be a coin flip or worse carries no evidence (increment 0), as
  symmetric noise does not move a coin flip; and at most 1 - 1e-4, so a reference without a mistake leaves room
  for one;
- each increment is capped at ln 20 (a likelihood ratio of 20; capping keeps the bound), so whatever the
  calibration says, at 1 false incident a week (h ~ 20 at 100 predictions/s) no fewer than seven labels open an
  incident;
- a row without a score counts with q = the reference accuracy's one-sided 95% lower bound (the Bernoulli
  evidence of a mistake), so the statistic keeps one meaning for the version.

The two tests, with the CBPE estimate (cbpe.py), share the performance family's third of the budget equally. The
severity follows the size of the decay: critical from `critical_*` on, reached at 95% confidence by the window's
decay or by that of all the labels since the change (after the CUSUM last stood at zero), so an incident the
CUSUM opened early as a warning is updated to critical once the labels support it, and the shipped rollback rule
can act on a large drop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special  # not scipy.stats: ~70 MB of imports for one normal tail

from modelyard.monitor.domain import decision
from modelyard.monitor.domain.cbpe import Calibration
from modelyard.monitor.domain.evaluation import PERFORMANCE_TESTS, STATISTICAL_FAMILIES
from modelyard.monitor.domain.incidents import Evidence, IncidentKey, Outcome, Severity, Signal
from modelyard.monitor.domain.metrics import BoolArray, FloatArray
from modelyard.monitor.domain.policy import WEEK_S, MonitorPolicy
from modelyard.monitor.domain.profile import ReferenceProfile
from modelyard.monitor.domain.sequential import (
    bernoulli_score,
    bernoulli_threshold,
    label_noise_increments,
    likelihood_ratio_threshold,
    one_sided_path,
    siegmund_threshold,
)
from modelyard.monitor.domain.state import LabelWindow, VersionState

# One-sided 95%: how sure a decay must be of its size to be critical.
CRITICAL_CONFIDENCE_Z = float(special.ndtri(0.95))
# The most one labelled row can add to the likelihood-ratio CUSUM: ln 20, a likelihood ratio of 20.
MAX_ROW_EVIDENCE = math.log(20.0)


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
    the reference, the standard error of that mean, the decays (in error units) that matter and that are critical,
    and, when the likelihood-ratio CUSUM applies, the calibration and the label-noise rate it tests for."""

    metric: str  # "accuracy" or "mae": what the incident is about
    mean: float
    std: float
    standard_error: float
    min_effect: float
    critical_effect: float
    calibration: Calibration | None = None
    noise: float = 0.0

    @classmethod
    def of(cls, profile: ReferenceProfile, policy: MonitorPolicy) -> Baseline | None:
        """None when the reference has no outputs and truth: then there is nothing to measure decay against."""
        p = policy.performance
        if (accuracy := profile.baseline.get("accuracy")) is not None:
            error = 1.0 - accuracy.value
            std = math.sqrt(max(error * (1.0 - error), 1e-6))
            calibration = profile.calibration
            # Label noise at rate eps costs eps (2A - 1) accuracy points; past 1/2 it is no longer noise.
            noise = p.min_accuracy_drop / (2 * accuracy.value - 1) if accuracy.value > 0.5 else math.inf
            if calibration is None or calibration.n is None or noise >= 0.5:
                calibration, noise = None, 0.0
            return cls(
                "accuracy",
                error,
                std,
                accuracy.standard_error,
                p.min_accuracy_drop,
                p.critical_accuracy_drop,
                calibration,
                noise,
            )
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

    def increments(
        self, errors: FloatArray, scores: FloatArray | None, predicted_positive: BoolArray | None
    ) -> FloatArray:
        """The CUSUM's steps: the rows' capped log-likelihood ratios, or +r per mistake and -1 per correct answer,
        or the standardised error less k."""
        if self.calibration is not None:
            q = np.full(errors.size, 1.0 - self.mean - CRITICAL_CONFIDENCE_Z * self.standard_error)
            if scores is not None and predicted_positive is not None:
                scored = np.isfinite(scores)
                q = np.where(scored, self.calibration.p_right_lower_bound(scores, predicted_positive), q)
            # Below 1/2 no evidence; a reference without a single mistake still leaves room for one.
            return label_noise_increments(errors == 0.0, np.clip(q, 0.5, 1 - 1e-4), self.noise, MAX_ROW_EVIDENCE)
        if self.metric == "accuracy":
            result: FloatArray = np.where(errors > 0.0, float(self._score), -1.0)
            return result
        return (errors - self.mean) / self.std - self._k

    def threshold(self, arl0: float) -> float:
        """The CUSUM's h for `arl0` in-control values between false alarms."""
        if self.calibration is not None:
            return likelihood_ratio_threshold(arl0)
        if self.metric == "accuracy":
            return float(bernoulli_threshold(self._p0, self._score, arl0))
        return siegmund_threshold(self._k, arl0)

    @property
    def _p0(self) -> float:  # a reference without a single mistake still leaves room for one
        return min(max(self.mean, 1e-4), 1 - 2e-4)

    @property
    def _score(self) -> int:
        return bernoulli_score(self._p0, min(self._p0 + self.min_effect, 1 - 1e-4))

    @property
    def _k(self) -> float:
        return self.min_effect / self.std / 2.0


def observe_errors(
    state: VersionState,
    profile: ReferenceProfile,
    errors: FloatArray,
    times: FloatArray,
    policy: MonitorPolicy,
    scores: FloatArray | None = None,
    predicted_positive: BoolArray | None = None,
) -> list[LabelWindowResult]:
    """Advance the version's CUSUM and label window over the labelled predictions' errors (in arrival order, with
    their predictions' event times and, for a classifier, their positive-class scores, NaN where none, and whether
    they predicted the positive class); a result per label window that closed: full, or at the CUSUM's first
    crossing."""
    baseline = Baseline.of(profile, policy)
    if baseline is None or errors.size == 0:
        return []
    h = _h(state, baseline, policy)
    steps = baseline.increments(errors, scores, predicted_positive)
    outcomes = []
    start = 0
    while start < errors.size:
        take = min(policy.performance.window_labels - state.labels.n, errors.size - start)
        path = one_sided_path(state.error_cusum, steps[start : start + take])
        crossed = np.flatnonzero(path >= h)
        first_crossing = state.error_cusum < h and crossed.size > 0
        if first_crossing:
            take = int(crossed[0]) + 1
            path = path[:take]
        _advance(state, path, errors[start : start + take], times[start : start + take])
        start += take
        if first_crossing or state.labels.n >= policy.performance.window_labels:
            outcomes.append(_close(state, baseline, policy, h))
    return outcomes


def _advance(state: VersionState, path: FloatArray, errors: FloatArray, times: FloatArray) -> None:
    state.error_cusum = float(path[-1])
    state.labels = state.labels.plus(errors, times)
    # The CUSUM's change-point estimate: the labels after it last stood at zero.
    zeros = np.flatnonzero(path <= 0.0)
    if zeros.size:
        state.since_change = LabelWindow()
        errors, times = errors[zeros[-1] + 1 :], times[zeros[-1] + 1 :]
    if errors.size:
        state.since_change = state.since_change.plus(errors, times)


def _h(state: VersionState, baseline: Baseline, policy: MonitorPolicy) -> float:
    # Labels arrive no faster than predictions: the prediction rate bounds the values a week from above.
    values_per_week = max(state.records_per_second, 1.0) * WEEK_S
    allowed = policy.alarm.false_incidents_per_week / STATISTICAL_FAMILIES / PERFORMANCE_TESTS
    return baseline.threshold(values_per_week / allowed)


def _close(state: VersionState, baseline: Baseline, policy: MonitorPolicy, h: float) -> LabelWindowResult:
    w = state.labels
    mean_error = w.error_sum / w.n
    value = 1.0 - mean_error if baseline.metric == "accuracy" else mean_error
    window = f"labels:{state.label_windows}"
    state.labels = LabelWindow()
    state.label_windows += 1
    alarm = state.error_cusum >= h
    key = IncidentKey(state.model_name, state.model_version, Signal.PERFORMANCE, baseline.metric)
    decay, standard_error = _decay_of(baseline, w)
    p_value = float(special.ndtr(-decay / standard_error))
    # The labels took at least as long as the predictions they are about: the fastest the windows can come.
    duration = w.n / max(state.records_per_second, 1e-9)
    alpha = decision.per_window_alpha(policy.alarm, duration, STATISTICAL_FAMILIES * PERFORMANCE_TESTS)
    evidence = []
    if p_value <= alpha and decay >= baseline.min_effect:
        evidence.append(Evidence(baseline.metric, "z_decay", decay, p_value, alpha, decay, 0, w.n, w.first, w.last))
    if alarm:
        statistic, state.error_cusum = state.error_cusum, h  # capped: see the module's docstring
        evidence.append(Evidence(baseline.metric, "cusum_up", statistic, math.nan, h, decay, 0, w.n, w.first, w.last))
    if not evidence:
        return LabelWindowResult(window, baseline.metric, value, Outcome(key, False))
    # Critical when the decay is at least the critical one with 95% confidence, not merely in a noisy estimate: in
    # this window, or in all the labels since the change (which escalates an incident the CUSUM opened early).
    critical = _surely_critical(baseline, decay, standard_error)
    run = state.since_change
    if not critical and run.n > w.n and _surely_critical(baseline, *(run_decay := _decay_of(baseline, run))):
        critical = True
        evidence.append(
            Evidence(
                baseline.metric,
                "decay_since_change",
                run_decay[0],
                math.nan,
                baseline.critical_effect,
                run_decay[0],
                0,
                run.n,
                run.first,
                run.last,
            )
        )
    severity = Severity.CRITICAL if critical else Severity.WARNING
    # The CUSUM spent its share of the budget in time by itself: its breach needs no k-of-m.
    outcome = Outcome(key, True, severity, tuple(evidence), decisive=alarm)
    return LabelWindowResult(window, baseline.metric, value, outcome)


def _decay_of(baseline: Baseline, labels: LabelWindow) -> tuple[float, float]:
    """The decay over some labels and its standard error (their sampling variance and the baseline's own)."""
    decay = baseline.decay(labels.error_sum / labels.n)
    return decay, math.sqrt(baseline.std**2 / labels.n + baseline.standard_error**2)


def _surely_critical(baseline: Baseline, decay: float, standard_error: float) -> bool:
    return decay - CRITICAL_CONFIDENCE_Z * standard_error >= baseline.critical_effect
