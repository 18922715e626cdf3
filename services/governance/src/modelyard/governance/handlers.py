"""The governance use cases: take domain objects and ports, return results and queue events.

Blocking (database, registry calls, onnxruntime): transports call these from a worker thread. Each use case is
one transaction; registry alias moves happen after it commits, so a failed transaction never moves an alias.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.json_format import MessageToDict

from modelyard.auth import Principal, Role
from modelyard.contracts.events.v1 import monitor_events_pb2, serving_events_pb2
from modelyard.events.envelope import Event
from modelyard.governance import convert
from modelyard.governance.domain import audit, card
from modelyard.governance.domain.checks import CheckResult, Measurements, run_checks
from modelyard.governance.domain.deployment import Deployment, Plan, deploy, promote_canary, rollback_for
from modelyard.governance.domain.errors import (
    AlreadyExists,
    ArtifactChanged,
    AuditTampered,
    CatalogUnavailable,
    FailedPrecondition,
    GovernanceError,
    InvalidArgument,
    NotFound,
)
from modelyard.governance.domain.model import VersionFacts
from modelyard.governance.domain.policy import Policy, PromotionRule
from modelyard.governance.domain.ports import Evaluator, GovernanceStore, ModelCatalog, Unit
from modelyard.governance.domain.workflow import PromotionRequest, RequestState

log = logging.getLogger(__name__)

# Who may do what (admin always may); the access table at the edge uses the same sets.
REQUEST = (Role.PUBLISHER, Role.APPROVER)
LIST_REQUESTS = (Role.VIEWER, Role.PUBLISHER, Role.APPROVER)
READ_REQUESTS = (*LIST_REQUESTS, Role.SERVICE)
READ_PLANS = (Role.VIEWER, Role.SERVICE, Role.PUBLISHER, Role.APPROVER)
READ_AUDIT = (Role.VIEWER, Role.APPROVER)
READ_CARDS = (Role.VIEWER, Role.PUBLISHER, Role.APPROVER)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class AliasCheck:
    """One deployed model's alias in the registry against its plan's primary, and whether it was set right."""

    model_name: str
    alias: str
    planned: int
    found: int | None  # None: the alias is not set
    repaired: bool = False

    @property
    def diverged(self) -> bool:
        """The registry still names another version than governance decided."""
        return self.found != self.planned and not self.repaired


@dataclass(frozen=True)
class ServedAt:
    plan: Plan
    role: str
    request: PromotionRequest | None


class GovernanceHandlers:
    def __init__(
        self,
        store: GovernanceStore,
        catalog: ModelCatalog,
        evaluator: Evaluator,
        policy: Policy,
        audit_key: Ed25519PublicKey,
        *,
        checkpoint_every: int,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.evaluator = evaluator
        self.policy = policy
        self.audit_key = audit_key
        self.checkpoint_every = checkpoint_every
        self.clock = clock

    # --- promotion workflow -------------------------------------------------------------------------------

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

    # --- deployments and rollback ---------------------------------------------------------------------------

    def deployment_plan(self, principal: Principal, model_name: str) -> Plan:
        principal.require("read deployment plans", READ_PLANS)
        with self.store.unit() as unit:
            deployment = unit.get_deployment(model_name)
        if deployment is None:
            raise NotFound(f"no deployment plan for model {model_name!r}")
        return deployment.plan

    def deployment_plans(self, principal: Principal) -> list[Plan]:
        """The current plan of every deployed model, by model name (one transaction: a consistent picture)."""
        principal.require("read deployment plans", READ_PLANS)
        with self.store.unit() as unit:
            deployments = [unit.get_deployment(name) for name in sorted(unit.deployed_models())]
        return [d.plan for d in deployments if d is not None]

    def handle_incident(self, message: monitor_events_pb2.IncidentChanged) -> Plan | None:
        """Apply the policy's rollback rules to a monitor alert; the rollback plan, if one was ordered. An alert
        about a model governance never deployed is recorded (audit) and otherwise ignored."""
        incident = convert.incident_of(message)
        if incident is None:
            return None
        alias_move: tuple[Deployment, str] | None = None
        with self.store.unit() as unit:
            unit.record_incident(incident)
            deployment = unit.get_deployment(incident.model_name)
            if deployment is None:
                log.info("alert %s about undeployed model %s ignored", incident.incident_id, incident.model_name)
                return None
            action = self.policy.rollback_action(incident.model_name, incident.signal, incident.severity)
            rollback = rollback_for(deployment, incident, self.clock()) if action == "rollback" else None
            if rollback is None:
                return None
            unit.save_deployment(rollback.deployment, "rolled back", rollback.reason)
            unit.publish(
                convert.rollback_ordered(incident, rollback),
                request_id=deployment.request_id,
                version=rollback.rolled_back.version,
            )
            alias_move = (rollback.deployment, rollback.reason)
        self._move_alias(alias_move)
        return rollback.deployment.plan

    def promote_due_canaries(self) -> int:
        """Give canaries whose observation period ended without an open incident all traffic (if allowed)."""
        with self.store.unit() as unit:
            model_names = unit.deployed_models()
        promoted = 0
        for model_name in model_names:
            with self.store.unit() as unit:
                deployment = unit.get_deployment(model_name)
                if deployment is None or deployment.plan.canary is None:
                    continue
                is_open = unit.has_open_incident(model_name, deployment.plan.canary.version)
                after = promote_canary(deployment, is_open, self.clock())
                if after is None:
                    continue
                request = unit.get_request(deployment.request_id)
                unit.save_deployment(after, "primary", "canary observed without incident")
                self._publish_approved(unit, request, after.plan)
            self._move_alias((after, "canary observed without incident"))
            promoted += 1
        return promoted

    def reconcile_aliases(self) -> list[AliasCheck]:
        """Point each deployed model's alias at its plan's primary where the registry says otherwise: an alias move
        that failed after its decision committed (registry away), or that governance died before making. Raises
        CatalogUnavailable while the registry cannot be read; a move that fails is reported as still diverged."""
        with self.store.unit() as unit:
            deployments = [d for d in map(unit.get_deployment, unit.deployed_models()) if d is not None]
        checks: list[AliasCheck] = []
        for deployment in deployments:
            primary = deployment.plan.primary
            found = self.catalog.alias_version(primary.model_name, deployment.alias)
            check = AliasCheck(
                primary.model_name, deployment.alias, primary.version, found.ref.version if found else None
            )
            if check.diverged:
                reason = f"reconciled with governance's plan revision {deployment.plan.revision}"
                try:
                    self.catalog.set_alias(primary.model_name, deployment.alias, primary.version, reason)
                    check = replace(check, repaired=True)
                    log.warning(
                        "alias %s of %s was v%s, set to v%d", check.alias, check.model_name, check.found, check.planned
                    )
                except GovernanceError as exc:
                    log.warning("alias %s of %s still diverges from the plan: %s", check.alias, check.model_name, exc)
            checks.append(check)
        return checks

    def served_at(self, principal: Principal, model_name: str, at: datetime) -> ServedAt:
        principal.require("query the audit trail", READ_AUDIT)
        with self.store.unit() as unit:
            history = [r for r in unit.deployment_history(model_name) if datetime.fromisoformat(r.at) <= at]
            if not history:
                raise NotFound(f"nothing served model {model_name!r} at {at.isoformat()}")
            record = history[-1]
            request = unit.get_request(record.request_id) if record.request_id else None
            plan = unit.plan_at(model_name, record.revision)
        return ServedAt(plan, record.role, request)

    # --- audit ------------------------------------------------------------------------------------------------

    def record_event(self, event: Event) -> None:
        """Append any Modelyard event to the audit log (a no-op for one already there: at-least-once delivery)."""
        body = _audited_body(event)
        version = _version_of(body)
        with self.store.unit() as unit:
            unit.audit(
                kind=event.type,
                event_id=event.id,
                source=event.source,
                time=event.time,
                model_name=event.key,
                version=version,
                request_id=str(body.get("request_id", "")),
                body=body,
            )

    def audit_entries(
        self,
        principal: Principal,
        *,
        model_name: str | None = None,
        version: int | None = None,
        request_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[audit.AuditEntry]:
        principal.require("query the audit trail", READ_AUDIT)
        return self.store.audit_entries(
            model_name=model_name, version=version, request_id=request_id, since=since, until=until
        )

    def verify_audit(self, principal: Principal, published: Sequence[audit.Checkpoint] = ()) -> audit.Verification:
        """Sign the head first (so that a healthy chain is covered up to it), then check the chain up to that head
        against its stored checkpoints and the `published` ones. A signer's refusal is tampering: it is reported
        after what the walk found, when it says something else."""
        principal.require("verify the audit trail", READ_AUDIT)
        refusal: AuditTampered | None = None
        try:
            head = self.store.checkpoint()
        except AuditTampered as tampered:
            head, refusal = None, tampered
        # Entries appended after the head was signed are the next checkpoint's business, not this walk's.
        through = head.seq if head is not None else None
        found = audit.verify(
            self.store.audit_entries(through_seq=through),
            [c for c in self.store.checkpoints() if through is None or c.seq <= through],
            self.audit_key,
            checkpoint_every=self.checkpoint_every,
            published=published,
        )
        if refusal is None or str(refusal) == found.problem:
            return found
        refused = f"the signer refuses to sign the head: {refusal}"
        problem = f"{found.problem}; {refused}" if found.problem else refused
        return replace(found, first_bad_seq=min(refusal.seq, found.first_bad_seq or refusal.seq), problem=problem)

    def checkpoint(self) -> audit.Checkpoint | None:
        return self.store.checkpoint()

    def recover_signer(self, published: Sequence[audit.Checkpoint]) -> audit.Checkpoint | None:
        """Before the signer signs anything: start it from the latest checkpoint it signed, among those published
        outside the database and those stored in it."""
        recovered = self.store.recover_signer(published)
        where = f"entry {recovered.seq} signed at {recovered.signed_at.isoformat()}" if recovered else "the start"
        log.info("audit signer recovered: it signs only a chain that extends %s", where)
        return recovered

    def export_audit(
        self, principal: Principal, model_name: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[str]:
        """A self-verifying JSON Lines slice of the entries about `model_name` in [since, until]."""
        principal.require("export the audit trail", READ_AUDIT)
        checkpoint = self.store.checkpoint()  # sign the head now, so that the slice ends at a signed checkpoint
        if checkpoint is None:
            raise NotFound("the audit trail is empty")

        def wanted(entry: audit.AuditEntry) -> bool:
            in_time = (since is None or entry.recorded_at >= since) and (until is None or entry.recorded_at <= until)
            return entry.model_name == model_name and in_time

        public_key = self.audit_key.public_bytes_raw().hex()
        entries = self.store.audit_entries(through_seq=checkpoint.seq)
        records = audit.export_records(entries, wanted, checkpoint, public_key)
        return [audit.canonical_json(record) for record in records]

    # --- model cards ------------------------------------------------------------------------------------------

    def model_card(self, principal: Principal, model_name: str, version: int) -> dict[str, Any]:
        principal.require("read model cards", READ_CARDS)
        facts = self.catalog.get_version(model_name, version)
        with self.store.unit() as unit:
            request = unit.latest_request_for(model_name, version)
            history = unit.deployment_history(model_name, version)
        return card.build_card(facts, request, history)

    # --- internals --------------------------------------------------------------------------------------------

    def _rule(self, model_name: str, alias: str) -> PromotionRule:
        rule = self.policy.promotion_rule(model_name, alias)
        if rule is None:
            raise FailedPrecondition(f"no policy rule covers promoting {model_name!r} to {alias!r}")
        return rule

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
        return run_checks(checks, facts, measured, serving.signature if serving else None, wanted_missing)

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

    def _publish_approved(self, unit: Unit, request: PromotionRequest, plan: Plan) -> None:
        unit.publish(convert.deployment_approved(request, plan), request_id=request.id, version=request.version.version)

    def _ended(self, unit: Unit, request: PromotionRequest) -> None:
        unit.publish(convert.promotion_ended(request), request_id=request.id, version=request.version.version)

    def _move_alias(self, move: tuple[Deployment, str] | None) -> None:
        """Point the alias at the plan's primary. The plan (already committed and queued) is what serving
        enacts; a registry that is away only delays the alias, which the next decision moves again."""
        if move is None:
            return
        deployment, reason = move
        primary = deployment.plan.primary
        try:
            self.catalog.set_alias(primary.model_name, deployment.alias, primary.version, reason)
        except Exception:
            log.exception("could not move alias %s of %s to v%d", deployment.alias, primary.model_name, primary.version)


def _audited_body(event: Event) -> dict[str, Any]:
    """What the audit keeps of an event: all of it, but for prediction traffic a reference (the batch's digest and
    counts). The stream is the record of the predictions themselves; copying every tensor into the chain grew the
    audit database by gigabytes an hour, while the digest still proves which batch was seen."""
    if isinstance(event.payload, serving_events_pb2.PredictionBatch):
        batch = event.payload
        digest = hashlib.sha256(batch.SerializeToString(deterministic=True)).hexdigest()
        versions = Counter(str(record.version.version) for record in batch.records)
        return {
            "model_name": batch.model_name,
            "batch_sha256": digest,
            "records": len(batch.records),
            "records_by_version": dict(sorted(versions.items())),
            "errors": sum(1 for record in batch.records if record.status_code != 0),
        }
    return MessageToDict(event.payload, preserving_proto_field_name=True)


def _version_of(body: dict[str, Any]) -> int:
    """The version an event is about, wherever its payload keeps it (0 when it is not about one version)."""
    for key in ("version", "plan", "rolled_back"):
        value = body.get(key)
        if isinstance(value, dict):
            found = value.get("version") or (value.get("primary") or {}).get("version")
            if found:
                return int(found)
        elif isinstance(value, int | str) and str(value).isdigit():
            return int(value)
    return int(body.get("to_version", 0) or 0)
