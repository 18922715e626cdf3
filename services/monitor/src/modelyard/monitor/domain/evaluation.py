"""One closed window against the reference: drift tests and decisions, data quality, SLOs, the CUSUM on scores.

Returns a report (what the dashboard and the history API show) and one outcome per incident key, which the
incident book turns into incidents.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from modelyard.monitor.domain import cbpe, decision
from modelyard.monitor.domain.drift import FeatureTest, categorical_drift, numeric_drift
from modelyard.monitor.domain.incidents import MODEL_LEVEL, Evidence, IncidentKey, Outcome, Severity, Signal
from modelyard.monitor.domain.policy import WEEK_S, MonitorPolicy
from modelyard.monitor.domain.profile import OUTPUT_PREFIX, Kind, ReferenceProfile, Role
from modelyard.monitor.domain.sequential import CusumState, cusum, siegmund_threshold
from modelyard.monitor.domain.windows import ClosedWindow

# Signal families that share the false-alarm budget: data drift, prediction drift and performance.
STATISTICAL_FAMILIES = 3
# The performance family's tests, which split its share equally: the error CUSUM and the label-window test on
# labels (degradation.py), and the CBPE estimate on prediction windows (cbpe.py).
PERFORMANCE_TESTS = 3


@dataclass(frozen=True)
class FeatureResult:
    signal: Signal
    test: FeatureTest
    threshold: float  # the feature's BH threshold at this window's alpha
    breached: bool


@dataclass(frozen=True)
class Distribution:
    """One output's distribution in a window next to the reference's, on the reference's bins or levels."""

    bins: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]


@dataclass(frozen=True)
class WindowReport:
    model_name: str
    model_version: int
    window: str
    start: float
    end: float
    closed_by: str
    n: int
    tested: bool  # False below the minimum n
    alpha: float = math.nan
    model_drift: Mapping[Signal, bool] = field(default_factory=dict)
    features: tuple[FeatureResult, ...] = ()
    quality: Mapping[str, float] = field(default_factory=dict)  # "<feature>:<check>" -> rate
    operations: Mapping[str, float] = field(default_factory=dict)  # latency quantiles, error rate
    outputs: Mapping[str, Distribution] = field(default_factory=dict)  # what the model answered vs the reference
    estimated: Mapping[str, float] = field(default_factory=dict)  # CBPE: expected accuracy and ROC AUC, before labels


def evaluate_window(
    profile: ReferenceProfile,
    window: ClosedWindow,
    policy: MonitorPolicy,
    cusum_states: dict[str, CusumState],
) -> tuple[WindowReport, list[Outcome]]:
    """Test a closed window; `cusum_states` (by output feature) is advanced in place."""
    data = window.data
    n = len(data)
    report = WindowReport(
        profile.model_name,
        profile.model_version,
        str(window.id),
        window.start,
        window.end,
        window.closed_by,
        n,
        tested=False,
    )
    if n < policy.window.min_events:
        return report, []
    # How long windows last sets how many a week holds, and so the per-window share of the weekly budget.
    duration = window.duration(policy.window)
    alpha = decision.per_window_alpha(policy.alarm, duration, STATISTICAL_FAMILIES)
    evidence_of = _EvidenceFactory(window)
    outcomes: list[Outcome] = []
    results: list[FeatureResult] = []
    model_drift: dict[Signal, bool] = {}
    for role, signal in ((Role.INPUT, Signal.DATA_DRIFT), (Role.OUTPUT, Signal.PREDICTION_DRIFT)):
        family = _drift_tests(profile, role, data.numeric, data.categorical)
        drifted, family_results = _decide(family, signal, alpha, policy)
        model_drift[signal] = drifted
        results += family_results
        if family_results:
            outcomes.append(_drift_outcome(profile, signal, drifted, family_results, policy, evidence_of))
    outcomes += _cusum_outcomes(profile, data.numeric, n, duration, policy, cusum_states, evidence_of)
    quality, quality_outcomes = _quality(profile, window, policy, evidence_of)
    operations, ops_outcomes = _operations(profile, window, policy, evidence_of)
    estimated, estimated_outcomes = _estimated(profile, window, duration, policy)
    report = dataclasses.replace(
        report,
        tested=True,
        alpha=alpha,
        model_drift=model_drift,
        features=tuple(results),
        quality=quality,
        operations=operations,
        outputs=_output_distributions(profile, window),
        estimated=estimated,
    )
    return report, outcomes + quality_outcomes + ops_outcomes + estimated_outcomes


def _estimated(
    profile: ReferenceProfile,
    window: ClosedWindow,
    duration: float,
    policy: MonitorPolicy,
) -> tuple[dict[str, float], list[Outcome]]:
    """CBPE on the window's scores and predicted classes, and its outcome against the baseline accuracy."""
    p = policy.performance
    data = window.data
    scores = data.numeric.get(f"{OUTPUT_PREFIX}{p.score_output}[{p.score_index}]")
    label = OUTPUT_PREFIX + p.label_output
    if profile.calibration is None or scores is None:
        return {}, []
    if label in data.numeric:
        predicted = np.array([f"{v:g}" for v in data.numeric[label].tolist()]) == p.positive_label
    elif label in data.categorical:
        predicted = data.categorical[label] == p.positive_label
    else:
        return {}, []
    estimated = cbpe.estimate(profile.calibration, scores, predicted)
    accuracy = profile.baseline.get("accuracy")
    if accuracy is None or cbpe.ESTIMATED_ACCURACY not in estimated:
        return estimated, []
    key = IncidentKey(profile.model_name, profile.model_version, Signal.PERFORMANCE, cbpe.ESTIMATED_ACCURACY)
    alpha = decision.per_window_alpha(policy.alarm, duration, STATISTICAL_FAMILIES * PERFORMANCE_TESTS)
    variance = cbpe.estimate_variance(profile.calibration, scores, predicted)

    bounds = (window.start, window.end)
    outcome = cbpe.estimate_outcome(key, estimated, variance, accuracy, p.min_accuracy_drop, alpha, len(data), bounds)
    return estimated, [outcome]


def _output_distributions(profile: ReferenceProfile, window: ClosedWindow) -> dict[str, Distribution]:
    result: dict[str, Distribution] = {}
    for spec in profile.numeric_features(Role.OUTPUT):
        ref = profile.numeric[spec.name]
        values = window.data.numeric[spec.name]
        values = values[np.isfinite(values)]
        counts = np.bincount(np.searchsorted(ref.bin_edges, values, side="right"), minlength=ref.bin_edges.size + 1)
        edges = ["-inf", *(f"{e:.3g}" for e in ref.bin_edges), "inf"]
        bins = tuple(f"[{lo}, {hi})" for lo, hi in itertools.pairwise(edges))
        current = counts / max(values.size, 1)
        result[spec.name] = Distribution(bins, tuple(ref.bin_proportions.tolist()), tuple(current.tolist()))
    for spec in profile.categorical_features(Role.OUTPUT):
        cat = profile.categorical[spec.name]
        labels = window.data.categorical[spec.name]
        codes, _ = cat.codes(labels[labels != ""])
        current = np.bincount(codes, minlength=len(cat.levels)) / max(codes.size, 1)
        reference = cat.counts / max(cat.n, 1)
        result[spec.name] = Distribution(cat.levels, tuple(reference.tolist()), tuple(current.tolist()))
    return result


def _drift_tests(
    profile: ReferenceProfile,
    role: Role,
    numeric: Mapping[str, np.ndarray],
    categorical: Mapping[str, np.ndarray],
) -> list[FeatureTest]:
    specs = profile.numeric_features(role)
    tests = numeric_drift({f.name: profile.numeric[f.name] for f in specs}, {f.name: numeric[f.name] for f in specs})
    for spec in profile.categorical_features(role):
        values = categorical[spec.name]
        codes, _ = profile.categorical[spec.name].codes(values[values != ""])
        result = categorical_drift(profile.categorical[spec.name], spec.name, codes)
        if result is not None:
            tests.append(result)
    return tests


def _decide(
    tests: list[FeatureTest], signal: Signal, alpha: float, policy: MonitorPolicy
) -> tuple[bool, list[FeatureResult]]:
    """Holm decides whether the model drifted; BH names the features; both need the effect above its floor."""
    if not tests:
        return False, []
    p = [t.p_value for t in tests]
    big_enough = np.array([t.effect_size >= _floor_of(t, policy) for t in tests])
    model_drifted = bool((decision.holm_rejections(p, alpha) & big_enough).any())
    named, thresholds = decision.benjamini_hochberg(p, alpha)
    breached = named & big_enough & model_drifted
    return model_drifted, [
        FeatureResult(signal, t, float(th), bool(b)) for t, th, b in zip(tests, thresholds, breached, strict=True)
    ]


def _drift_outcome(
    profile: ReferenceProfile,
    signal: Signal,
    drifted: bool,
    results: list[FeatureResult],
    policy: MonitorPolicy,
    evidence_of: _EvidenceFactory,
) -> Outcome:
    """One outcome per drift family, keyed by the model (feature MODEL_LEVEL): the breach is Holm's model-level
    decision, the per-window event the false-alarm budget was split for, and the evidence is the features BH named
    (most significant first), so one incident says which features moved instead of one incident per feature."""
    key = IncidentKey(profile.model_name, profile.model_version, signal, MODEL_LEVEL)
    named = sorted((r for r in results if r.breached), key=lambda r: r.test.p_value)
    if not drifted or not named:
        return Outcome(key, False)
    severity = max(_severity(r.test.effect_size, _floor_of(r.test, policy), policy) for r in named)
    return Outcome(key, True, severity, tuple(evidence_of.test(r.test, r.threshold) for r in named))


def _floor_of(test: FeatureTest, policy: MonitorPolicy) -> float:
    return policy.alarm.numeric_effect_floor if test.statistic == "ks" else policy.alarm.categorical_effect_floor


def _severity(effect: float, floor: float, policy: MonitorPolicy) -> Severity:
    return Severity.CRITICAL if effect >= policy.alarm.critical_effect_ratio * floor else Severity.WARNING


def _cusum_outcomes(
    profile: ReferenceProfile,
    numeric: Mapping[str, np.ndarray],
    n: int,
    duration: float,
    policy: MonitorPolicy,
    states: dict[str, CusumState],
    evidence_of: _EvidenceFactory,
) -> list[Outcome]:
    outputs = profile.numeric_features(Role.OUTPUT)
    if not outputs:
        return []
    # Each side of each output's CUSUM gets an equal share of the prediction-drift family's weekly budget.
    values_per_week = n / duration * WEEK_S
    allowed_alarms = policy.alarm.false_incidents_per_week / STATISTICAL_FAMILIES / (2 * len(outputs))
    k = policy.alarm.cusum_drift
    h = siegmund_threshold(k, values_per_week / allowed_alarms)
    outcomes = []
    for spec in outputs:
        ref = profile.numeric[spec.name]
        mean = float(ref.prefix_sums[-1] / ref.n)
        values = numeric[spec.name]
        z = (values[np.isfinite(values)] - mean) / (ref.std if ref.std > 0 else 1.0)
        states[spec.name], alarm = cusum(states.get(spec.name, CusumState()), z, k, h)
        key = IncidentKey(profile.model_name, profile.model_version, Signal.PREDICTION_DRIFT, f"cusum:{spec.name}")
        if alarm is None:
            outcomes.append(Outcome(key, False))
            continue
        evidence = evidence_of.threshold_check(
            spec.name, "cusum_" + alarm.direction, alarm.statistic, h, ref.n, int(z.size)
        )
        outcomes.append(Outcome(key, True, Severity.WARNING, (evidence,)))
    return outcomes


def _quality(
    profile: ReferenceProfile, window: ClosedWindow, policy: MonitorPolicy, evidence_of: _EvidenceFactory
) -> tuple[dict[str, float], list[Outcome]]:
    """Null, new-category and out-of-range rates per feature and the schema violation rate, against limits."""
    data, q = window.data, policy.quality
    n = len(data)
    rates: dict[str, float] = {}
    outcomes: list[Outcome] = []
    for spec in profile.features:
        checks: list[tuple[str, float, float]] = []  # (check, rate, limit)
        if spec.kind is Kind.NUMERIC:
            ref = profile.numeric[spec.name]
            values = data.numeric[spec.name]
            finite = np.isfinite(values)
            checks.append(("null_rate", 1.0 - float(finite.mean()), ref.null_rate + q.max_null_rate_increase))
            kept = values[finite]
            outside = (kept < ref.sorted_values[0]) | (kept > ref.sorted_values[-1])
            checks.append(("out_of_range_rate", float(outside.mean()) if kept.size else 0.0, q.max_out_of_range_rate))
        else:
            cat = profile.categorical[spec.name]
            labels = data.categorical[spec.name]
            present = labels[labels != ""]
            checks.append(("null_rate", 1.0 - present.size / n, cat.null_rate + q.max_null_rate_increase))
            _, unseen = cat.codes(present)
            checks.append(("new_category_rate", unseen / max(present.size, 1), q.max_new_category_rate))
        outcomes.append(
            _threshold_outcome(profile, Signal.DATA_QUALITY, spec.name, checks, rates, policy, evidence_of, n)
        )
    if data.schema_violations is not None:
        rate = float(data.schema_violations.mean())
        checks = [("schema_violation_rate", rate, q.max_schema_violation_rate)]
        outcomes.append(
            _threshold_outcome(profile, Signal.DATA_QUALITY, "schema", checks, rates, policy, evidence_of, n)
        )
    return rates, outcomes


def _operations(
    profile: ReferenceProfile, window: ClosedWindow, policy: MonitorPolicy, evidence_of: _EvidenceFactory
) -> tuple[dict[str, float], list[Outcome]]:
    data, slo = window.data, policy.slo
    p50, p95, p99 = (float(v) for v in np.quantile(data.latency_ms, [0.5, 0.95, 0.99]))
    error_rate = float((data.status != 0).mean())
    operations = {"latency_p50_ms": p50, "latency_p95_ms": p95, "latency_p99_ms": p99, "error_rate": error_rate}
    rates: dict[str, float] = {}
    n = len(data)
    return operations, [
        _threshold_outcome(
            profile, Signal.LATENCY, "p99", [("latency_p99_ms", p99, slo.latency_p99_ms)], rates, policy, evidence_of, n
        ),
        _threshold_outcome(
            profile,
            Signal.ERROR_RATE,
            "error_rate",
            [("error_rate", error_rate, slo.error_rate)],
            rates,
            policy,
            evidence_of,
            n,
        ),
    ]


def _threshold_outcome(
    profile: ReferenceProfile,
    signal: Signal,
    feature: str,
    checks: list[tuple[str, float, float]],
    rates: dict[str, float],
    policy: MonitorPolicy,
    evidence_of: _EvidenceFactory,
    n: int,
) -> Outcome:
    """Breached when any check is over its limit; critical when one is `critical_effect_ratio` times over it."""
    key = IncidentKey(profile.model_name, profile.model_version, signal, feature)
    over = [(check, rate, limit) for check, rate, limit in checks if rate > limit]
    for check, rate, _ in checks:
        rates[f"{feature}:{check}"] = rate
    if not over:
        return Outcome(key, False)
    ratio = policy.alarm.critical_effect_ratio
    critical = any(limit <= 0 or rate >= ratio * limit for _, rate, limit in over)
    evidence = tuple(evidence_of.threshold_check(feature, check, rate, limit, 0, n) for check, rate, limit in over)
    return Outcome(key, True, Severity.CRITICAL if critical else Severity.WARNING, evidence)


@dataclass(frozen=True)
class _EvidenceFactory:
    window: ClosedWindow

    def test(self, test: FeatureTest, threshold: float) -> Evidence:
        return Evidence(
            test.feature,
            test.statistic,
            test.value,
            test.p_value,
            threshold,
            test.effect_size,
            test.n_reference,
            test.n_current,
            self.window.start,
            self.window.end,
        )

    def threshold_check(self, feature: str, check: str, value: float, limit: float, n_ref: int, n: int) -> Evidence:
        # A limit check has no p-value: NaN says so on the wire (proto doubles carry it) rather than a fake 0.
        return Evidence(feature, check, value, math.nan, limit, value, n_ref, n, self.window.start, self.window.end)
