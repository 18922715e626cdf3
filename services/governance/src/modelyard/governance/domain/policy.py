"""Policies as code: which checks, approvals and rollout a promotion needs, and which alerts order a rollback.

A policy file is YAML validated into pydantic models at startup. Errors name the file and the line of the
offending node (PyYAML's composed node tree keeps positions that the loaded Python objects lose), so a bad policy
stops the service with a message a person can act on instead of failing on the first promotion.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
from enum import StrEnum
from pathlib import Path
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelyard.auth import Role
from modelyard.governance.domain.errors import PolicyError

CARD_SECTIONS = (
    "model_details",
    "intended_use",
    "factors",
    "metrics",
    "evaluation_data",
    "training_data",
    "ethical_considerations",
    "caveats",
)
EvaluationMetric = Literal["accuracy", "roc_auc", "f1", "mae", "rmse", "r2"]


class _Strict(BaseModel):
    # Unknown keys are typos in a policy ("approval:" for "approvals:"); silently ignoring them weakens a gate.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bound(_Strict):
    """Acceptable range of one metric; either end may be open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_end(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError("a bound needs min, max or both")
        return self

    def admits(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class ImportanceCheck(_Strict):
    """Global feature importance: mean |Shapley value| of each feature over rows of the evaluation dataset
    (shap's permutation explainer, against a background sample of the same dataset)."""

    rows: int = Field(default=100, ge=1, description="evaluation rows explained (a seeded sample)")
    background_rows: int = Field(default=50, ge=1, description="background sample (seeded)")
    permutations: int = Field(default=3, ge=1, description="permutations per explained row")
    max_feature_share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="fail when one feature carries more than this share of the total importance (a leak, a proxy); "
        "without it the importance is evidence only",
    )


class EvaluationCheck(_Strict):
    """Metrics governance computes itself by running the model on the version's registered evaluation dataset,
    and the global importance of its features there."""

    label_column: str = "target"
    metrics: dict[EvaluationMetric, Bound] = Field(min_length=1)
    importance: ImportanceCheck = Field(default_factory=ImportanceCheck)


class FairnessCheck(_Strict):
    """fairlearn's gaps between groups of `sensitive_column` of the evaluation dataset (0 = no gap)."""

    sensitive_column: str = Field(min_length=1)
    max_demographic_parity_difference: float = Field(ge=0, le=1)
    max_equalized_odds_difference: float = Field(ge=0, le=1)


class NotWorseCheck(_Strict):
    """The candidate against the version the alias serves now, both measured by governance on the candidate's
    evaluation dataset (for a retrained version: held-out rows of the newest snapshot of live traffic). It passes
    when the candidate is not worse on `metric` by more than `tolerance`, or when nothing serves the alias yet."""

    metric: EvaluationMetric = "accuracy"
    label_column: str = "target"
    tolerance: float = Field(default=0.0, ge=0)

    @property
    def lower_is_better(self) -> bool:
        return self.metric in ("mae", "rmse")

    def evaluation(self) -> EvaluationCheck:
        """What to measure both versions with: the metric alone (this check, not a bound, judges it)."""
        return EvaluationCheck(label_column=self.label_column, metrics={self.metric: Bound(min=-math.inf)})


class Checks(_Strict):
    lineage_metrics: dict[str, Bound] = Field(default_factory=dict)
    evaluation: EvaluationCheck | None = None
    not_worse: NotWorseCheck | None = None
    latency_budget_ms: float | None = Field(default=None, gt=0, description="p95 of single-row predictions")
    signature_compatible: bool = False
    fairness: FairnessCheck | None = None
    model_card: list[Literal[CARD_SECTIONS]] = Field(default_factory=list)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _fairness_needs_evaluation(self) -> Self:
        if self.fairness is not None and self.evaluation is None:
            raise ValueError("fairness needs an evaluation section (it is computed on the evaluation dataset)")
        return self


class Approvals(_Strict):
    count: int = Field(default=1, ge=0)
    role: Role = Role.APPROVER


class Rollout(_Strict):
    canary_weight: float = Field(default=0.0, ge=0, lt=1, description="0: switch all traffic at once")
    observation_s: float = Field(default=600.0, ge=0)
    shadow: bool = False
    auto_promote: bool = False
    fresh_s: float = Field(default=3600.0, ge=0, description="a primary this young may still be rolled back")


class PromotionRule(_Strict):
    models: str = Field(min_length=1, description="fnmatch pattern of model names")
    alias: str = Field(min_length=1)
    checks: Checks = Field(default_factory=Checks)
    approvals: Approvals = Field(default_factory=Approvals)
    rollout: Rollout = Field(default_factory=Rollout)
    expires_after_s: float = Field(default=7 * 24 * 3600.0, gt=0)

    def covers(self, model_name: str, alias: str) -> bool:
        return alias == self.alias and fnmatch.fnmatchcase(model_name, self.models)


class AlertSeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(AlertSeverity).index(self)


class RollbackRule(_Strict):
    models: str = "*"
    signals: list[str] = Field(default_factory=list, description="empty: every signal")
    min_severity: AlertSeverity = AlertSeverity.CRITICAL
    action: Literal["rollback", "ignore"] = "rollback"

    def matches(self, model_name: str, signal: str, severity: AlertSeverity) -> bool:
        return (
            fnmatch.fnmatchcase(model_name, self.models)
            and (not self.signals or signal in self.signals)
            and severity.rank >= self.min_severity.rank
        )


class Policy(_Strict):
    version: str = Field(min_length=1, description="the policy document's own version, e.g. 2025-06-01")
    promotions: list[PromotionRule] = Field(default_factory=list)
    rollbacks: list[RollbackRule] = Field(default_factory=list)

    @property
    def hash(self) -> str:
        """sha256 of the validated policy in canonical JSON: comments and layout do not change it, meaning does."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def promotion_rule(self, model_name: str, alias: str) -> PromotionRule | None:
        """The first rule covering this promotion, in file order."""
        return next((rule for rule in self.promotions if rule.covers(model_name, alias)), None)

    def rollback_action(self, model_name: str, signal: str, severity: AlertSeverity) -> str:
        """What the first matching rollback rule says; "ignore" when none matches."""
        rule = next((r for r in self.rollbacks if r.matches(model_name, signal, severity)), None)
        return rule.action if rule else "ignore"


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate a policy document; PolicyError names `source` and the line of the first problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f":{mark.line + 1}" if mark else ""
        raise PolicyError(f"{source}{at}: not valid YAML: {exc.problem or exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{source}:1: a policy is a mapping with 'version', 'promotions' and 'rollbacks'")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        location = [part for part in problem["loc"] if not isinstance(part, str) or not part.startswith("function-")]
        line = _line_of(root, location)
        path = ".".join(str(part) for part in location) or "(document)"
        raise PolicyError(f"{source}:{line}: {path}: {problem['msg']}") from None


def load_policy(path: Path) -> Policy:
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror}") from None
    return parse_policy(text, str(path))


def _line_of(node: yaml.Node | None, location: list[int | str]) -> int:
    """1-based line of the deepest node on `location` that exists (a missing key points at its parent)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in location:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((value for key, value in node.value if key.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line
