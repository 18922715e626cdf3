from datetime import UTC, datetime, timedelta

import pytest

from modelyard.auth import Principal, Role
from modelyard.governance.domain.checks import CheckResult
from modelyard.governance.domain.errors import AlreadyExists, ArtifactChanged, FailedPrecondition, SeparationOfDuties
from modelyard.governance.domain.model import VersionRef
from modelyard.governance.domain.workflow import PromotionRequest, RequestState
from modelyard.governance.testing import ALICE, BOB, CAROL, DAVE, EVE

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, tzinfo=UTC)
DIGEST = "sha256:" + "a" * 64


def request(approvals: int = 2) -> PromotionRequest:
    created = PromotionRequest(
        id="r1",
        version=VersionRef("m", 3, DIGEST),
        target_alias="production",
        requested_by=BOB.name,
        registered_by=ALICE.name,
        policy_hash="sha256:p",
        required_approvals=approvals,
        approver_role=Role.APPROVER,
        created_at=NOW,
        expires_at=NOW + timedelta(days=1),
    )
    assert created.record_checks([CheckResult("lineage_metrics", True, "ok")], NOW) is RequestState.AWAITING_APPROVAL
    return created


def test_two_distinct_approvers_approve_the_digest_they_saw() -> None:
    r = request()
    r.approve(CAROL, DIGEST, NOW)
    assert r.state is RequestState.AWAITING_APPROVAL
    r.approve(DAVE, DIGEST, NOW)
    assert r.state is RequestState.APPROVED
    assert r.approvers == ["carol", "dave"] and all(a.digest == DIGEST for a in r.approvals)


@pytest.mark.parametrize(
    ("who", "rule"),
    [
        (Principal("bob", frozenset({Role.APPROVER})), "sod-requester-cannot-approve"),
        (Principal("alice", frozenset({Role.ADMIN})), "sod-registrant-cannot-approve"),
        (EVE, "approver-role-required"),
    ],
)
def test_separation_of_duties_names_the_rule(who: Principal, rule: str) -> None:
    with pytest.raises(SeparationOfDuties, match=rule):
        request().approve(who, DIGEST, NOW)


def test_approving_twice_already_exists() -> None:
    r = request()
    r.approve(CAROL, DIGEST, NOW)
    with pytest.raises(AlreadyExists):
        r.approve(CAROL, DIGEST, NOW)


@pytest.mark.parametrize("end", ["reject", "supersede", "withdraw", "expire"])
def test_a_closed_request_cannot_be_approved(end: str) -> None:
    r = request()
    {
        "reject": lambda: r.reject("carol", "not convinced", NOW),
        "supersede": lambda: r.supersede("r2", NOW),
        "withdraw": lambda: r.withdraw("bob", NOW),
        "expire": lambda: r.expire_if_due(NOW + timedelta(days=2)),
    }[end]()
    with pytest.raises(FailedPrecondition, match="can no longer be approved"):
        r.approve(CAROL, DIGEST, NOW)


def test_a_changed_artifact_voids_the_request() -> None:
    r = request()
    r.approve(CAROL, DIGEST, NOW)
    with pytest.raises(ArtifactChanged):
        r.approve(DAVE, "sha256:" + "b" * 64, NOW)
    assert r.state is RequestState.REJECTED and "artifact changed" in r.reason


def test_failed_checks_reject_and_checking_requests_wait() -> None:
    waiting = PromotionRequest(**{**vars(request()), "state": RequestState.CHECKING, "checks": []})
    with pytest.raises(FailedPrecondition, match="checks are still running"):
        waiting.approve(CAROL, DIGEST, NOW)
    failed = CheckResult("latency", False, "p95 9 ms over the budget of 5 ms")
    assert waiting.record_checks([failed], NOW) is RequestState.REJECTED
    assert "latency: p95 9 ms" in waiting.reason
    automatic = PromotionRequest(**{**vars(waiting), "state": RequestState.CHECKING, "required_approvals": 0})
    assert automatic.record_checks([], NOW) is RequestState.APPROVED and automatic.decided_by == "policy"
