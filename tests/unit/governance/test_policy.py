from pathlib import Path

import pytest

from modelyard.governance.domain.errors import PolicyError
from modelyard.governance.domain.policy import AlertSeverity, load_policy, parse_policy
from modelyard.governance.testing import POLICY

pytestmark = pytest.mark.unit


def test_a_valid_policy_loads_and_matches_rules_in_file_order() -> None:
    policy = parse_policy(POLICY)
    rule = policy.promotion_rule("fraud", "production")
    assert rule is not None and rule.approvals.count == 2 and rule.rollout.canary_weight == 0.2
    assert policy.promotion_rule("fraud", "canary-lab") is None
    assert policy.rollback_action("fraud", "performance", AlertSeverity.CRITICAL) == "rollback"
    assert policy.rollback_action("fraud", "performance", AlertSeverity.WARNING) == "ignore"
    assert policy.rollback_action("fraud", "data_drift", AlertSeverity.CRITICAL) == "ignore"


def test_the_hash_ignores_layout_and_comments_but_not_meaning() -> None:
    relaid = "# a comment\n" + POLICY.replace("{count: 2, role: approver}", "\n      count: 2\n      role: approver")
    assert parse_policy(relaid).hash == parse_policy(POLICY).hash
    assert parse_policy(POLICY.replace("count: 2", "count: 3")).hash != parse_policy(POLICY).hash


@pytest.mark.parametrize(
    ("mutation", "line", "words"),
    [
        (("approvals: {count: 2", "approval: {count: 2"), 10, "approval: Extra inputs are not permitted"),
        (("canary_weight: 0.2", "canary_weight: 1.5"), 11, "promotions.0.rollout.canary_weight"),
        (("accuracy: {min: 0.9}", "accuracy: {}"), 7, "a bound needs min, max or both"),
        (("min_severity: critical", "min_severity: dire"), 17, "rollbacks.0.min_severity"),
        (('models: "*"\n    alias: staging', 'models: "*"\n    alias: [staging'), 14, "not valid YAML"),
    ],
)
def test_a_bad_policy_is_an_error_naming_the_file_and_line(
    tmp_path: Path, mutation: tuple[str, str], line: int, words: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace(*mutation))
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    assert str(error.value).startswith(f"{path}:")
    assert words in str(error.value)
    assert f"policy.yaml:{line}:" in str(error.value)


def test_fairness_without_evaluation_is_refused() -> None:
    text = "version: x\npromotions:\n  - models: m\n    alias: p\n    checks:\n      fairness:\n"
    text += "        sensitive_column: sex\n        max_demographic_parity_difference: 0.1\n"
    text += "        max_equalized_odds_difference: 0.1\n"
    with pytest.raises(PolicyError, match=r"<policy>:6: promotions.0.checks: Value error, fairness needs"):
        parse_policy(text)
