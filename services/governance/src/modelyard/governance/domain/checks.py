"""The automated checks of a promotion, as pure judgements over evidence gathered by adapters.

Measuring (running the model, computing fairness) happens in an adapter behind the `Evaluator` port; this module
only decides whether the numbers satisfy the policy, and says why, so that each decision carries its evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modelyard.governance.domain.model import Dim, Signature, TensorSpec, VersionFacts
from modelyard.governance.domain.policy import Bound, Checks, FairnessCheck, ImportanceCheck, NotWorseCheck

IMPORTANCE_PREFIX = "importance:"  # evidence keys of the explainability check: one per feature

Evidence = Mapping[str, float | str]


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    evidence: Evidence = field(default_factory=dict)


@dataclass(frozen=True)
class Measurements:
    """What the evaluator measured on the evaluation dataset."""

    dataset: str  # digest of the dataset measured on
    rows: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    latency_p95_ms: float | None = None
    demographic_parity_difference: float | None = None
    equalized_odds_difference: float | None = None
    importance: Mapping[str, float] = field(default_factory=dict)  # feature -> mean |attribution|
    importance_rows: int = 0
    importance_method: str = ""


@dataclass(frozen=True)
class Comparison:
    """The candidate and the version serving the alias, measured on the same (the candidate's evaluation) dataset."""

    candidate: Measurements
    serving: Measurements | None = None  # None: nothing else serves the alias yet
    serving_version: int = 0


def run_checks(
    checks: Checks,
    facts: VersionFacts,
    measured: Measurements | None,
    serving: Signature | None,
    missing_card_sections: list[str],
    comparison: Comparison | None = None,
) -> list[CheckResult]:
    """Every check the policy asks for, in a stable order."""
    results: list[CheckResult] = []
    if checks.lineage_metrics:
        results.append(check_bounds("lineage_metrics", checks.lineage_metrics, facts.metrics))
    if checks.evaluation is not None:
        results.append(
            check_bounds(
                "evaluation",
                {str(k): v for k, v in checks.evaluation.metrics.items()},
                measured.metrics if measured else {},
                measured,
            )
        )
        results.append(check_importance(checks.evaluation.importance, measured))
    if checks.not_worse is not None:
        results.append(check_not_worse(checks.not_worse, comparison))
    if checks.latency_budget_ms is not None:
        results.append(check_latency(checks.latency_budget_ms, measured))
    if checks.fairness is not None:
        results.append(check_fairness(checks.fairness, measured))
    if checks.signature_compatible:
        results.append(check_signature(facts.signature, serving))
    if checks.model_card:
        results.append(check_model_card(missing_card_sections))
    return results


def check_bounds(
    name: str, bounds: Mapping[str, Bound], observed: Mapping[str, float], measured: Measurements | None = None
) -> CheckResult:
    failures = []
    for metric, bound in sorted(bounds.items()):
        value = observed.get(metric)
        if value is None:
            failures.append(f"{metric} is missing")
        elif not bound.admits(value):
            failures.append(f"{metric}={value:.4g} outside [{_end(bound.min, '-inf')}, {_end(bound.max, 'inf')}]")
    evidence: dict[str, float | str] = {metric: observed[metric] for metric in bounds if metric in observed}
    if measured is not None:
        evidence.update(dataset=measured.dataset, rows=measured.rows)
    detail = "; ".join(failures) or f"{len(bounds)} metrics within bounds"
    return CheckResult(name, not failures, detail, evidence)


def check_not_worse(spec: NotWorseCheck, comparison: Comparison | None) -> CheckResult:
    metric = spec.metric
    candidate = comparison.candidate.metrics.get(metric) if comparison else None
    if comparison is None or candidate is None:
        return CheckResult("not_worse", False, f"{metric} of the candidate was not measured")
    evidence: dict[str, float | str] = {
        "metric": metric,
        "candidate": candidate,
        "dataset": comparison.candidate.dataset,
        "rows": comparison.candidate.rows,
        "tolerance": spec.tolerance,
    }
    served = comparison.serving.metrics.get(metric) if comparison.serving else None
    if served is None:
        return CheckResult("not_worse", True, f"nothing else serves the alias: {metric} {candidate:.4g}", evidence)
    evidence |= {"serving": served, "serving_version": comparison.serving_version}
    loss = candidate - served if spec.lower_is_better else served - candidate
    passed = loss <= spec.tolerance
    detail = (
        f"{metric} {candidate:.4g} against v{comparison.serving_version}'s {served:.4g} on the same "
        f"{comparison.candidate.rows} rows: {'not worse' if passed else 'worse'}"
        + (f" (tolerance {spec.tolerance:g})" if spec.tolerance else "")
    )
    return CheckResult("not_worse", passed, detail, evidence)


def check_latency(budget_ms: float, measured: Measurements | None) -> CheckResult:
    if measured is None or measured.latency_p95_ms is None:
        return CheckResult("latency", False, "latency was not measured")
    p95 = measured.latency_p95_ms
    passed = p95 <= budget_ms
    detail = f"p95 {p95:.3g} ms {'within' if passed else 'over'} the budget of {budget_ms:g} ms"
    return CheckResult("latency", passed, detail, {"p95_ms": p95, "budget_ms": budget_ms})


def check_fairness(spec: FairnessCheck, measured: Measurements | None) -> CheckResult:
    dpd = measured.demographic_parity_difference if measured else None
    eod = measured.equalized_odds_difference if measured else None
    if dpd is None or eod is None:
        return CheckResult("fairness", False, f"fairness on {spec.sensitive_column!r} was not measured")
    failures = []
    if dpd > spec.max_demographic_parity_difference:
        failures.append(f"demographic parity difference {dpd:.3g} > {spec.max_demographic_parity_difference:g}")
    if eod > spec.max_equalized_odds_difference:
        failures.append(f"equalized odds difference {eod:.3g} > {spec.max_equalized_odds_difference:g}")
    evidence: dict[str, float | str] = {
        "sensitive_column": spec.sensitive_column,
        "demographic_parity_difference": dpd,
        "equalized_odds_difference": eod,
    }
    return CheckResult("fairness", not failures, "; ".join(failures) or "within both fairness bounds", evidence)


def check_importance(spec: ImportanceCheck, measured: Measurements | None) -> CheckResult:
    """The global importance as evidence; fails when it was not measured, or when the policy bounds the share of
    the most important feature and it is over."""
    importance = measured.importance if measured else {}
    total = sum(importance.values())
    if not importance or measured is None:
        return CheckResult("explainability", False, "global feature importance was not measured")
    top, value = max(importance.items(), key=lambda item: item[1])
    share = value / total if total > 0 else 0.0
    evidence: dict[str, float | str] = {
        "method": measured.importance_method,
        "rows": measured.importance_rows,
        "top_feature": top,
        "top_share": share,
        **{f"{IMPORTANCE_PREFIX}{name}": v for name, v in sorted(importance.items(), key=lambda item: -item[1])},
    }
    summary = f"top feature {top!r} carries {share:.0%} of the importance of {len(importance)} features"
    if spec.max_feature_share is None:
        return CheckResult("explainability", True, f"{summary} (no bound in the policy)", evidence)
    passed = share <= spec.max_feature_share
    bound = f"{'within' if passed else 'over'} the bound of {spec.max_feature_share:.0%}"
    return CheckResult("explainability", passed, f"{summary}, {bound}", evidence)


def check_signature(candidate: Signature, serving: Signature | None) -> CheckResult:
    """Compatible when every client of the serving version keeps working: the same inputs (no new required
    ones) with compatible types and shapes, and at least the serving version's outputs."""
    if serving is None:
        return CheckResult("signature", True, "nothing serves yet: nothing to be compatible with")
    problems = _tensor_problems("input", serving.inputs, candidate.inputs)
    problems += [f"new required input {t.name!r}" for t in candidate.inputs if t.name not in _names(serving.inputs)]
    problems += _tensor_problems("output", serving.outputs, candidate.outputs)
    return CheckResult("signature", not problems, "; ".join(problems) or "compatible with the serving version")


def check_model_card(missing_sections: list[str]) -> CheckResult:
    if missing_sections:
        return CheckResult("model_card", False, "model card lacks " + ", ".join(missing_sections))
    return CheckResult("model_card", True, "model card complete")


def _names(tensors: tuple[TensorSpec, ...]) -> set[str]:
    return {t.name for t in tensors}


def _tensor_problems(kind: str, old: tuple[TensorSpec, ...], new: tuple[TensorSpec, ...]) -> list[str]:
    by_name = {t.name: t for t in new}
    problems = []
    for before in old:
        after = by_name.get(before.name)
        if after is None:
            problems.append(f"{kind} {before.name!r} is gone")
        elif after.element_type != before.element_type:
            problems.append(f"{kind} {before.name!r} changed type {before.element_type} -> {after.element_type}")
        elif not _shapes_compatible(before.shape, after.shape):
            problems.append(f"{kind} {before.name!r} changed shape {before.shape} -> {after.shape}")
    return problems


def _shapes_compatible(old: tuple[Dim, ...] | None, new: tuple[Dim, ...] | None) -> bool:
    if old is None or new is None:
        return True  # an unknown rank promises nothing to break
    if len(old) != len(new):
        return False
    # A symbolic or unknown dimension on either side accepts any size.
    return all(not isinstance(a, int) or not isinstance(b, int) or a == b for a, b in zip(old, new, strict=True))


def _end(value: float | None, open_end: str) -> str:
    return open_end if value is None else f"{value:g}"
