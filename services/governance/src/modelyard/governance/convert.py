"""Domain values <-> protobuf contracts: the events governance publishes (built here from its decisions), the
alerts it reads, and the messages of the gRPC/REST edges."""

from __future__ import annotations

from datetime import UTC

from modelyard.contracts.events.v1 import common_pb2, governance_events_pb2, monitor_events_pb2
from modelyard.contracts.governance.v1 import governance_service_pb2 as gpb
from modelyard.events.envelope import Event
from modelyard.governance.domain.audit import Checkpoint
from modelyard.governance.domain.deployment import Incident, Plan, Rollback
from modelyard.governance.domain.model import VersionRef
from modelyard.governance.domain.policy import AlertSeverity
from modelyard.governance.domain.workflow import PromotionRequest

SOURCE = "governance"
_SEVERITY = {
    monitor_events_pb2.SEVERITY_INFO: AlertSeverity.INFO,
    monitor_events_pb2.SEVERITY_WARNING: AlertSeverity.WARNING,
    monitor_events_pb2.SEVERITY_CRITICAL: AlertSeverity.CRITICAL,
}


def ref_pb(ref: VersionRef | None) -> common_pb2.ModelVersionRef | None:
    if ref is None:
        return None
    return common_pb2.ModelVersionRef(model_name=ref.model_name, version=ref.version, digest=ref.digest)


def plan_pb(plan: Plan) -> common_pb2.DeploymentPlan:
    return common_pb2.DeploymentPlan(
        model_name=plan.model_name,
        primary=ref_pb(plan.primary),
        canary=ref_pb(plan.canary),
        canary_weight=plan.canary_weight,
        shadow=ref_pb(plan.shadow),
        revision=plan.revision,
    )


def incident_of(message: monitor_events_pb2.IncidentChanged) -> Incident | None:
    """The incident an alert describes; None when it has no severity governance can judge."""
    severity = _SEVERITY.get(message.severity)
    if severity is None:
        return None
    signal = monitor_events_pb2.Signal.Name(message.signal).removeprefix("SIGNAL_").lower()
    return Incident(
        incident_id=message.incident_id,
        model_name=message.version.model_name,
        version=message.version.version,
        signal=signal,
        severity=severity,
        open=message.state != monitor_events_pb2.IncidentChanged.STATE_RESOLVED,
    )


def request_pb(request: PromotionRequest) -> gpb.PromotionRequest:
    message = gpb.PromotionRequest(
        request_id=request.id,
        version=ref_pb(request.version),
        target_alias=request.target_alias,
        requested_by=request.requested_by,
        registered_by=request.registered_by,
        policy_hash=request.policy_hash,
        state=request.state.value,
        required_approvals=request.required_approvals,
        approver_role=request.approver_role.value,
        approvers=request.approvers,
        reason=request.reason,
        decided_by=request.decided_by,
        checks=[
            gpb.CheckResult(
                name=c.name, passed=c.passed, detail=c.detail, evidence={k: str(v) for k, v in c.evidence.items()}
            )
            for c in request.checks
        ],
    )
    message.created_at.FromDatetime(request.created_at)
    message.expires_at.FromDatetime(request.expires_at)
    if request.decided_at is not None:
        message.decided_at.FromDatetime(request.decided_at)
    return message


def checkpoint_pb(checkpoint: Checkpoint) -> governance_events_pb2.AuditCheckpointSigned:
    message = governance_events_pb2.AuditCheckpointSigned(
        seq=checkpoint.seq, head_hash=checkpoint.head_hash, key_id=checkpoint.key_id, signature=checkpoint.signature
    )
    message.signed_at.FromDatetime(checkpoint.signed_at)
    return message


def checkpoint_of(message: governance_events_pb2.AuditCheckpointSigned) -> Checkpoint:
    return Checkpoint(
        seq=message.seq,
        head_hash=message.head_hash,
        signed_at=message.signed_at.ToDatetime(tzinfo=UTC),
        key_id=message.key_id,
        signature=message.signature,
    )


# -- decisions: the events governance publishes, one per decision ----------------------------------------------


def promotion_requested(request: PromotionRequest) -> Event:
    payload = governance_events_pb2.PromotionRequested(
        request_id=request.id,
        version=ref_pb(request.version),
        target_alias=request.target_alias,
        requested_by=request.requested_by,
        policy_hash=request.policy_hash,
    )
    return Event.new(request.version.model_name, payload, SOURCE)


def promotion_ended(request: PromotionRequest) -> Event:
    """A request that ended without a deployment: rejected, withdrawn, expired or superseded (`outcome`)."""
    payload = governance_events_pb2.PromotionRejected(
        request_id=request.id,
        version=ref_pb(request.version),
        reason=request.reason,
        decided_by=request.decided_by,
        outcome=request.state.value,
        target_alias=request.target_alias,
    )
    return Event.new(request.version.model_name, payload, SOURCE)


def deployment_approved(request: PromotionRequest, plan: Plan) -> Event:
    payload = governance_events_pb2.DeploymentApproved(
        request_id=request.id,
        target_alias=request.target_alias,
        plan=plan_pb(plan),
        approvers=request.approvers,
        policy_hash=request.policy_hash,
        evidence=[f"{c.name}: {'passed' if c.passed else 'failed'} ({c.detail})" for c in request.checks],
    )
    return Event.new(request.version.model_name, payload, SOURCE)


def rollback_ordered(incident: Incident, rollback: Rollback) -> Event:
    payload = governance_events_pb2.RollbackOrdered(
        incident_id=incident.incident_id,
        plan=plan_pb(rollback.deployment.plan),
        rolled_back=ref_pb(rollback.rolled_back),
        reason=rollback.reason,
    )
    return Event.new(incident.model_name, payload, SOURCE)
