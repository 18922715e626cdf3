"""The promotion workflow: a request moves CHECKING -> AWAITING_APPROVAL -> APPROVED, or ends REJECTED,
WITHDRAWN, SUPERSEDED or EXPIRED. Separation of duties is enforced here, so that every transport gets it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from modelyard.auth import Principal, Role
from modelyard.governance.domain.checks import CheckResult
from modelyard.governance.domain.errors import AlreadyExists, ArtifactChanged, FailedPrecondition, SeparationOfDuties
from modelyard.governance.domain.model import VersionRef

# Rule names quoted in PERMISSION_DENIED messages (and docs/governance.md), so a refusal says which rule bit.
RULE_REQUESTER = "sod-requester-cannot-approve"
RULE_REGISTRANT = "sod-registrant-cannot-approve"
RULE_ROLE = "approver-role-required"


class RequestState(StrEnum):
    CHECKING = "checking"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"

    @property
    def open(self) -> bool:
        return self in (RequestState.CHECKING, RequestState.AWAITING_APPROVAL)


@dataclass(frozen=True)
class Approval:
    approver: str
    digest: str  # the artifact approved: an approval never carries over to other bytes
    at: datetime


@dataclass
class PromotionRequest:
    id: str
    version: VersionRef
    target_alias: str
    requested_by: str
    registered_by: str
    policy_hash: str
    required_approvals: int
    approver_role: Role
    created_at: datetime
    expires_at: datetime
    state: RequestState = RequestState.CHECKING
    checks: list[CheckResult] = field(default_factory=list)
    approvals: list[Approval] = field(default_factory=list)
    reason: str = ""
    decided_by: str = ""
    decided_at: datetime | None = None

    @property
    def approvers(self) -> list[str]:
        return [a.approver for a in self.approvals if a.digest == self.version.digest]

    @property
    def satisfied(self) -> bool:
        return self.state is RequestState.AWAITING_APPROVAL and len(self.approvers) >= self.required_approvals

    def record_checks(self, results: list[CheckResult], now: datetime) -> RequestState:
        """Judge the check results: rejected if any failed, else awaiting approvals (approved at once when the
        policy asks for none). Returns the new state."""
        self._require_state(RequestState.CHECKING, "record check results")
        self.checks = list(results)
        failed = [r for r in results if not r.passed]
        if failed:
            detail = "; ".join(f"{r.name}: {r.detail}" for r in failed)
            self._end(RequestState.REJECTED, f"checks failed: {detail}", "governance", now)
        elif self.required_approvals == 0:
            self._end(RequestState.APPROVED, "no approvals required", "policy", now)
        else:
            self.state = RequestState.AWAITING_APPROVAL
        return self.state

    def approve(self, principal: Principal, current_digest: str, now: datetime) -> None:
        """Add `principal`'s approval of the artifact as it is now; check `satisfied` afterwards."""
        if not self.state.open:
            raise FailedPrecondition(f"request {self.id} is {self.state}: it can no longer be approved")
        if principal.name == self.requested_by:
            raise SeparationOfDuties(
                f"{principal.name} requested this promotion and may not approve it (rule {RULE_REQUESTER})"
            )
        if principal.name == self.registered_by:
            raise SeparationOfDuties(
                f"{principal.name} registered version {self.version.version} and may not approve it "
                f"(rule {RULE_REGISTRANT})"
            )
        if not principal.has_any([self.approver_role]):
            raise SeparationOfDuties(
                f"{principal.name} lacks the role {self.approver_role} this policy requires (rule {RULE_ROLE})"
            )
        if current_digest != self.version.digest:
            # The bytes behind the version changed since the request: nothing approved so far applies to them.
            self._end(RequestState.REJECTED, f"artifact changed from {self.version.digest}", "governance", now)
            raise ArtifactChanged(f"request {self.id}: the version's artifact changed; approvals are void")
        if self.state is RequestState.CHECKING:
            raise FailedPrecondition(f"request {self.id}: checks are still running")
        if principal.name in self.approvers:
            raise AlreadyExists(f"{principal.name} already approved request {self.id}")
        self.approvals.append(Approval(principal.name, current_digest, now))
        if self.satisfied:
            self.state = RequestState.APPROVED
            self.decided_by = ",".join(self.approvers)
            self.decided_at = now

    def reject(self, by: str, reason: str, now: datetime) -> None:
        self._require_open("reject")
        self._end(RequestState.REJECTED, reason or "rejected", by, now)

    def withdraw(self, by: str, now: datetime) -> None:
        self._require_open("withdraw")
        self._end(RequestState.WITHDRAWN, "withdrawn by the requester", by, now)

    def supersede(self, by_request: str, now: datetime) -> None:
        self._require_open("supersede")
        self._end(RequestState.SUPERSEDED, f"superseded by request {by_request}", "governance", now)

    def expire_if_due(self, now: datetime) -> bool:
        if self.state.open and now >= self.expires_at:
            self._end(RequestState.EXPIRED, "no decision before the policy's deadline", "governance", now)
            return True
        return False

    def _require_open(self, action: str) -> None:
        if not self.state.open:
            raise FailedPrecondition(f"cannot {action} request {self.id}: it is {self.state}")

    def _require_state(self, state: RequestState, action: str) -> None:
        if self.state is not state:
            raise FailedPrecondition(f"cannot {action} for request {self.id}: it is {self.state}")

    def _end(self, state: RequestState, reason: str, by: str, now: datetime) -> None:
        self.state, self.reason, self.decided_by, self.decided_at = state, reason, by, now
