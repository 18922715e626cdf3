"""Governance use cases: the promotion workflow: requests, their checks, approvals, rejections and expiry."""

from __future__ import annotations

import uuid
from datetime import timedelta

from modelyard.auth import Principal
from modelyard.governance import convert
from modelyard.governance.domain import card
from modelyard.governance.domain.checks import CheckResult, Comparison, Measurements, run_checks
from modelyard.governance.domain.deployment import Deployment, deploy
from modelyard.governance.domain.errors import (
    AlreadyExists,
    ArtifactChanged,
    CatalogUnavailable,
    FailedPrecondition,
    GovernanceError,
    InvalidArgument,
)
from modelyard.governance.domain.model import VersionFacts
from modelyard.governance.domain.policy import NotWorseCheck, PromotionRule
from modelyard.governance.domain.ports import Unit
from modelyard.governance.domain.workflow import PromotionRequest, RequestState
from modelyard.governance.handlers.base import (
    LIST_REQUESTS,
    READ_REQUESTS,
    REQUEST,
    UseCases,
)


class PromotionUseCases(UseCases):
    def request_promotion(self, principal: Principal, model_name: str, version: int, alias: str) -> PromotionRequest:
        principal.require("request promotions", REQUEST)
        if not model_name or version < 1 or not alias:
            raise InvalidArgument("a promotion needs a model name, a version >= 1 and a target alias")
        rule = self._rule(model_name, alias)
        facts = self.catalog.get_version(model_name, version)
        now = self.clock()
        request = PromotionRequest(
            id=str(uuid.uuid4()),
            version=facts.ref,
            target_alias=alias,
            requested_by=principal.name,
            registered_by=facts.created_by,
            policy_hash=self.policy.hash,
            required_approvals=rule.approvals.count,
            approver_role=rule.approvals.role,
            created_at=now,
            expires_at=now + timedelta(seconds=rule.expires_after_s),
        )
        with self.store.unit() as unit:
            for earlier in unit.open_requests(model_name, alias):
                if earlier.version.version == version:
                    raise AlreadyExists(f"request {earlier.id} already asks to promote v{version} to {alias!r}")
                earlier.supersede(request.id, now)
                unit.save_request(earlier)
                self._ended(unit, earlier)
            unit.save_request(request)
            unit.publish(convert.promotion_requested(request), request_id=request.id, version=version)
        return request

    def run_checks(self, request_id: str) -> PromotionRequest:
        """Gather the evidence and judge it; the request then awaits approvals (or is rejected)."""
        with self.store.unit() as unit:
            request = unit.get_request(request_id)
            history = unit.deployment_history(request.version.model_name, request.version.version)
        if request.state is not RequestState.CHECKING:
            return request
        rule = self._rule(request.version.model_name, request.target_alias)
        try:
            results = self._check(rule, request, history)
        except CatalogUnavailable:
            raise  # the registry is away: the request stays CHECKING and the next pass tries again
        except GovernanceError as exc:
            # Evidence that cannot be gathered (a dataset missing from the registry) fails the gate, visibly.
            results = [CheckResult("evidence", False, str(exc))]
        alias_move: tuple[Deployment, str] | None = None
        with self.store.unit() as unit:
            request = unit.get_request(request_id)
            if request.state is not RequestState.CHECKING:
                return request  # withdrawn or superseded meanwhile
            state = request.record_checks(results, self.clock())
            if state is RequestState.REJECTED:
                self._ended(unit, request)
            elif state is RequestState.APPROVED:
                alias_move = self._approved(unit, request, rule)
            unit.save_request(request)
        self._move_alias(alias_move)
        return request

    def run_pending_checks(self) -> int:
        """Check every request still in CHECKING (also those a restart interrupted); how many were checked."""
        with self.store.unit() as unit:
            waiting = [r.id for r in unit.open_requests() if r.state is RequestState.CHECKING]
        for request_id in waiting:
            self.run_checks(request_id)
        return len(waiting)

    def approve(self, principal: Principal, request_id: str) -> PromotionRequest:
        alias_move: tuple[Deployment, str] | None = None
        with self.store.unit() as unit:
            request = unit.get_request(request_id)
            current = self.catalog.get_version(request.version.model_name, request.version.version)
            try:
                request.approve(principal, current.ref.digest, self.clock())
            except ArtifactChanged as changed:
                # The request is void now, and that must be recorded (committed) before the caller is refused.
                unit.save_request(request)
                self._ended(unit, request)
                error: ArtifactChanged | None = changed
            else:
                error = None
                if request.state is RequestState.APPROVED:
                    rule = self._rule(request.version.model_name, request.target_alias)
                    alias_move = self._approved(unit, request, rule)
                unit.save_request(request)
        if error is not None:
            raise error
        self._move_alias(alias_move)
        return request

    def reject(self, principal: Principal, request_id: str, reason: str) -> PromotionRequest:
        with self.store.unit() as unit:
            request = unit.get_request(request_id)
            if principal.name == request.requested_by:  # a requester may always withdraw their own request
                request.withdraw(principal.name, self.clock())
            else:
                principal.require("reject promotions", [request.approver_role])
                request.reject(principal.name, reason, self.clock())
            unit.save_request(request)
            self._ended(unit, request)
        return request

    def expire_requests(self) -> int:
        with self.store.unit() as unit:
            expired = [r for r in unit.open_requests() if r.expire_if_due(self.clock())]
            for request in expired:
                unit.save_request(request)
                self._ended(unit, request)
        return len(expired)

    def list_pending(self, principal: Principal, model_name: str = "") -> list[PromotionRequest]:
        principal.require("list promotion requests", LIST_REQUESTS)
        with self.store.unit() as unit:
            return unit.open_requests(model_name or None)

    def get_request(self, principal: Principal, request_id: str) -> PromotionRequest:
        principal.require("read promotion requests", READ_REQUESTS)
        with self.store.unit() as unit:
            return unit.get_request(request_id)

    def _check(
        self, rule: PromotionRule, request: PromotionRequest, history: list[card.DeploymentRecord]
    ) -> list[CheckResult]:
        checks = rule.checks
        facts = self.catalog.get_version(request.version.model_name, request.version.version)
        measured: Measurements | None = None
        if checks.evaluation is not None or checks.latency_budget_ms is not None:
            model = self.catalog.download(facts.ref.digest)
            measured = self._measure(facts, model, rule)
        serving = (
            self.catalog.alias_version(facts.ref.model_name, request.target_alias)
            if checks.signature_compatible
            else None
        )
        missing = card.missing_sections(card.build_card(facts, None, history))
        wanted_missing = [s for s in missing if s in checks.model_card]
        comparison = self._compare(checks.not_worse, facts, request.target_alias) if checks.not_worse else None
        signature = serving.signature if serving else None
        return run_checks(checks, facts, measured, signature, wanted_missing, comparison)

    def _compare(self, spec: NotWorseCheck, facts: VersionFacts, alias: str) -> Comparison:
        """The candidate and the version the alias names now, measured on the candidate's evaluation dataset."""
        if not facts.evaluation_datasets:
            raise FailedPrecondition(f"version {facts.ref.version} has no registered evaluation dataset")
        digest = facts.evaluation_datasets[0]
        dataset = self.catalog.download(digest)
        evaluation = spec.evaluation()

        def measure(version: VersionFacts) -> Measurements:
            model = self.catalog.download(version.ref.digest)
            return self.evaluator.measure(model, dataset, digest, version.signature, evaluation, None)

        serving = self.catalog.alias_version(facts.ref.model_name, alias)
        if serving is None or serving.ref.version == facts.ref.version:
            return Comparison(measure(facts))
        return Comparison(measure(facts), measure(serving), serving.ref.version)

    def _measure(self, facts: VersionFacts, model: bytes, rule: PromotionRule) -> Measurements:
        checks = rule.checks
        if checks.evaluation is None:
            latency = self.evaluator.latency_p95_ms(model, facts.signature)
            return Measurements(dataset="", rows=0, latency_p95_ms=latency)
        if not facts.evaluation_datasets:
            raise FailedPrecondition(f"version {facts.ref.version} has no registered evaluation dataset")
        digest = facts.evaluation_datasets[0]
        dataset = self.catalog.download(digest)
        return self.evaluator.measure(model, dataset, digest, facts.signature, checks.evaluation, checks.fairness)

    def _approved(self, unit: Unit, request: PromotionRequest, rule: PromotionRule) -> tuple[Deployment, str]:
        after = deploy(
            unit.get_deployment(request.version.model_name),
            request.version,
            request.target_alias,
            request.id,
            rule.rollout,
            self.clock(),
        )
        role = "primary" if after.plan.primary == request.version else ("canary" if after.plan.canary else "shadow")
        unit.save_deployment(after, role, f"approved by {', '.join(request.approvers) or 'policy'}")
        self._publish_approved(unit, request, after.plan)
        return after, f"promotion request {request.id}"

    def _ended(self, unit: Unit, request: PromotionRequest) -> None:
        unit.publish(convert.promotion_ended(request), request_id=request.id, version=request.version.version)
