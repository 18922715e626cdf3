"""Governance use cases: deployments: plans, rollback on incidents, canary promotion, alias reconciliation."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from modelyard.auth import Principal
from modelyard.contracts.events.v1 import monitor_events_pb2
from modelyard.governance import convert
from modelyard.governance.domain.deployment import Deployment, Plan, promote_canary, rollback_for
from modelyard.governance.domain.errors import (
    GovernanceError,
    NotFound,
)
from modelyard.governance.domain.workflow import PromotionRequest
from modelyard.governance.handlers.base import (
    READ_AUDIT,
    READ_PLANS,
    UseCases,
    log,
)


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


class DeploymentUseCases(UseCases):
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
