from dataclasses import replace
from datetime import UTC, datetime

import pytest

from modelyard.auth import Role
from modelyard.governance.domain.card import build_card, missing_sections, render_markdown
from modelyard.governance.domain.checks import (
    Comparison,
    Measurements,
    check_bounds,
    check_fairness,
    check_importance,
    check_latency,
    check_not_worse,
    check_signature,
)
from modelyard.governance.domain.model import Signature, TensorSpec
from modelyard.governance.domain.policy import Bound, FairnessCheck, ImportanceCheck, NotWorseCheck
from modelyard.governance.domain.workflow import PromotionRequest
from modelyard.governance.testing import SIGNATURE, facts

pytestmark = pytest.mark.unit

MEASURED = Measurements("sha256:d", 100, {"accuracy": 0.91, "mae": 3.0}, 4.0, 0.05, 0.2)


def test_metric_bounds_report_each_failure_and_missing_metric() -> None:
    bounds = {"accuracy": Bound(min=0.9), "mae": Bound(max=2.0), "roc_auc": Bound(min=0.8)}
    result = check_bounds("evaluation", bounds, MEASURED.metrics, MEASURED)
    assert not result.passed
    assert result.detail == "mae=3 outside [-inf, 2]; roc_auc is missing"
    assert result.evidence == {"accuracy": 0.91, "mae": 3.0, "dataset": "sha256:d", "rows": 100}


def test_latency_and_fairness_gates() -> None:
    assert check_latency(5.0, MEASURED).passed and not check_latency(3.0, MEASURED).passed
    gate = FairnessCheck(
        sensitive_column="group", max_demographic_parity_difference=0.1, max_equalized_odds_difference=0.1
    )
    result = check_fairness(gate, MEASURED)
    assert not result.passed and result.detail == "equalized odds difference 0.2 > 0.1"


def test_signature_compatibility() -> None:
    assert check_signature(SIGNATURE, None).passed
    assert check_signature(SIGNATURE, SIGNATURE).passed
    wider = Signature(inputs=(TensorSpec("X", "FLOAT", ("N", 5)),), outputs=SIGNATURE.outputs)
    assert "changed shape" in check_signature(wider, SIGNATURE).detail
    extra = Signature(inputs=(*SIGNATURE.inputs, TensorSpec("Y", "FLOAT")), outputs=SIGNATURE.outputs[:1])
    detail = check_signature(extra, SIGNATURE).detail
    assert "new required input 'Y'" in detail and "output 'probabilities' is gone" in detail
    dynamic = Signature(inputs=(TensorSpec("X", "FLOAT", (1, 4)),), outputs=SIGNATURE.outputs)
    assert check_signature(dynamic, SIGNATURE).passed


def test_a_card_uses_model_card_toolkit_names_and_lists_missing_sections() -> None:
    complete = build_card(facts("m", 1), None, [])
    assert set(complete) >= {"model_details", "model_parameters", "quantitative_analysis", "considerations"}
    assert complete["considerations"]["use_cases"] == [{"description": "scoring loan applications"}]
    assert missing_sections(complete) == []
    bare = build_card(replace(facts("m", 1), tags={}, description=""), None, [])
    assert missing_sections(bare) == [
        "model_details",
        "intended_use",
        "factors",
        "ethical_considerations",
        "caveats",
    ]
    markdown = render_markdown(complete)
    assert markdown.startswith("# Model card: m v1\n") and "| accuracy | 0.95 | lineage |" in markdown


def test_not_worse_compares_with_the_serving_version_on_the_same_rows() -> None:
    spec = NotWorseCheck(metric="accuracy", tolerance=0.01)
    candidate = Measurements("sha256:new", 200, {"accuracy": 0.90})
    better = Comparison(candidate, Measurements("sha256:new", 200, {"accuracy": 0.905}), serving_version=1)
    result = check_not_worse(spec, better)
    assert result.passed, result.detail  # 0.005 worse: within the tolerance
    assert result.evidence == {
        "metric": "accuracy",
        "candidate": 0.90,
        "serving": 0.905,
        "serving_version": 1,
        "dataset": "sha256:new",
        "rows": 200,
        "tolerance": 0.01,
    }
    worse = replace(better, serving=Measurements("sha256:new", 200, {"accuracy": 0.95}))
    assert not check_not_worse(spec, worse).passed
    assert "accuracy 0.9 against v1's 0.95 on the same 200 rows: worse" in check_not_worse(spec, worse).detail
    # Lower is better for errors; nothing serving yet passes; an unmeasured candidate fails.
    mae = NotWorseCheck(metric="mae")
    assert check_not_worse(
        mae, Comparison(Measurements("d", 9, {"mae": 2.0}), Measurements("d", 9, {"mae": 3.0}), 4)
    ).passed
    assert not check_not_worse(
        mae, Comparison(Measurements("d", 9, {"mae": 3.0}), Measurements("d", 9, {"mae": 2.0}), 4)
    ).passed
    assert check_not_worse(spec, Comparison(candidate)).passed
    assert not check_not_worse(spec, None).passed


def test_global_importance_is_evidence_and_bounds_the_top_features_share() -> None:
    measured = replace(MEASURED, importance={"age": 0.25, "income": 0.75}, importance_rows=80, importance_method="m")
    recorded = check_importance(ImportanceCheck(), measured)
    assert recorded.passed
    assert (
        recorded.detail == "top feature 'income' carries 75% of the importance of 2 features (no bound in the policy)"
    )
    assert recorded.evidence == {
        "method": "m",
        "rows": 80,
        "top_feature": "income",
        "top_share": 0.75,
        "importance:income": 0.75,
        "importance:age": 0.25,
    }
    bounded = check_importance(ImportanceCheck(max_feature_share=0.7), measured)
    assert not bounded.passed and bounded.detail.endswith("over the bound of 70%")
    assert check_importance(ImportanceCheck(max_feature_share=0.8), measured).passed
    assert not check_importance(ImportanceCheck(), MEASURED).passed  # nothing measured is not evidence

    version = facts("m", 1)
    now = datetime.now(UTC)
    request = PromotionRequest(
        "r1", version.ref, "production", "bob", "alice", "sha256:p", 1, Role.APPROVER, now, now, checks=[recorded]
    )
    card = build_card(version, request, [])
    assert [f["feature"] for f in card["explainability"]["global_importance"]] == ["income", "age"]
    markdown = render_markdown(card)
    assert "Global importance: mean |attribution| over 80 evaluation rows (m)." in markdown
    assert "| income | 0.75 |" in markdown
