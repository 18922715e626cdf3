"""Deployment plans per model: what an approval turns into, when a canary takes all traffic, and when an alert
orders a rollback to the previous approved version."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from modelyard.governance.domain.model import VersionRef
from modelyard.governance.domain.policy import AlertSeverity, Rollout


@dataclass(frozen=True)
class Plan:
    """What serving should run for one model; `revision` grows by one with every plan."""

    model_name: str
    primary: VersionRef
    revision: int
    canary: VersionRef | None = None
    canary_weight: float = 0.0
    shadow: VersionRef | None = None


@dataclass(frozen=True)
class Deployment:
    """One model's current plan, and what governance needs to judge alerts about it."""

    plan: Plan
    alias: str
    request_id: str
    approved_at: datetime
    previous: VersionRef | None  # the last approved version before this promotion: where a rollback goes
    observe_until: datetime | None = None  # end of the canary's observation period
    fresh_until: datetime | None = None  # until then a new primary counts as fresh (rollback-able)
    auto_promote: bool = False
    handled_incidents: frozenset[str] = field(default_factory=frozenset)

    @property
    def candidate(self) -> VersionRef:
        """The version this promotion is about (in canary, shadow or primary position)."""
        return self.plan.canary or self.plan.shadow or self.plan.primary


@dataclass(frozen=True)
class Incident:
    incident_id: str
    model_name: str
    version: int
    signal: str  # e.g. "performance", "error_rate"
    severity: AlertSeverity
    open: bool


@dataclass(frozen=True)
class Rollback:
    deployment: Deployment
    rolled_back: VersionRef
    reason: str


def deploy(
    current: Deployment | None, version: VersionRef, alias: str, request_id: str, rollout: Rollout, now: datetime
) -> Deployment:
    """The deployment an approval of `version` leads to: canary or shadow beside the serving version when the
    policy says so and something serves; otherwise `version` takes all traffic."""
    revision = current.plan.revision + 1 if current else 1
    serving = current.plan.primary if current else None
    name = version.model_name
    if serving is not None and serving != version and rollout.shadow:
        plan = Plan(name, serving, revision, shadow=version)
    elif serving is not None and serving != version and rollout.canary_weight > 0:
        plan = Plan(name, serving, revision, canary=version, canary_weight=rollout.canary_weight)
    else:
        plan = Plan(name, version, revision)
    staged = plan.primary != version
    return Deployment(
        plan=plan,
        alias=alias,
        request_id=request_id,
        approved_at=now,
        previous=serving,
        observe_until=now + timedelta(seconds=rollout.observation_s) if staged else None,
        fresh_until=now + timedelta(seconds=rollout.fresh_s),
        auto_promote=rollout.auto_promote and plan.canary is not None,
    )


def promote_canary(deployment: Deployment, open_incident: bool, now: datetime) -> Deployment | None:
    """The canary takes all traffic once its observation period ends with no open incident, if allowed."""
    plan = deployment.plan
    if plan.canary is None or not deployment.auto_promote or open_incident:
        return None
    if deployment.observe_until is None or now < deployment.observe_until:
        return None
    return replace(
        deployment,
        plan=Plan(plan.model_name, plan.canary, plan.revision + 1),
        observe_until=None,
        auto_promote=False,
        fresh_until=max(deployment.fresh_until or now, now),
    )


def rollback_for(deployment: Deployment, incident: Incident, now: datetime) -> Rollback | None:
    """The rollback an (already policy-matched) incident orders, or None. One rollback per incident: a
    re-opened or flapping incident about a version that was rolled back finds it no longer deployed."""
    if not incident.open or incident.incident_id in deployment.handled_incidents:
        return None
    plan = deployment.plan
    handled = deployment.handled_incidents | {incident.incident_id}
    if plan.canary is not None and plan.canary.version == incident.version:
        back = Plan(plan.model_name, plan.primary, plan.revision + 1)
        reason = f"critical {incident.signal} incident {incident.incident_id} on canary v{incident.version}"
        rolled_back = plan.canary
    elif (
        plan.primary.version == incident.version
        and deployment.previous is not None
        and deployment.fresh_until is not None
        and now < deployment.fresh_until
    ):
        back = Plan(plan.model_name, deployment.previous, plan.revision + 1)
        reason = f"critical {incident.signal} incident {incident.incident_id} on fresh v{incident.version}"
        rolled_back = plan.primary
    else:
        return None
    after = replace(
        deployment,
        plan=back,
        previous=None,  # governance keeps one step of history: a rolled-back deployment is not fresh any more
        observe_until=None,
        fresh_until=None,
        auto_promote=False,
        handled_incidents=handled,
    )
    return Rollback(after, rolled_back, reason)
