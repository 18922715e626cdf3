"""The governance API once, transport-free: protobuf request in, protobuf response out, for a principal.

The gRPC servicer and the REST router both dispatch to `GovernanceApi` by method name, so the two transports
cannot drift apart and REST answers with the JSON form of the same messages.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from modelyard.auth import Principal
from modelyard.contracts.governance.v1 import governance_service_pb2 as pb
from modelyard.governance import convert
from modelyard.governance.domain import audit, card
from modelyard.governance.domain.errors import InvalidArgument
from modelyard.governance.handlers import GovernanceHandlers
from modelyard.inputs import time_of


class GovernanceApi:
    def __init__(self, handlers: GovernanceHandlers) -> None:
        self._h = handlers

    def RequestPromotion(self, p: Principal, r: pb.RequestPromotionRequest) -> pb.RequestPromotionResponse:
        created = self._h.request_promotion(p, r.model_name, r.version, r.target_alias)
        return pb.RequestPromotionResponse(request=convert.request_pb(created))

    def Approve(self, p: Principal, r: pb.ApproveRequest) -> pb.ApproveResponse:
        return pb.ApproveResponse(request=convert.request_pb(self._h.approve(p, r.request_id)))

    def Reject(self, p: Principal, r: pb.RejectRequest) -> pb.RejectResponse:
        return pb.RejectResponse(request=convert.request_pb(self._h.reject(p, r.request_id, r.reason)))

    def ListPending(self, p: Principal, r: pb.ListPendingRequest) -> pb.ListPendingResponse:
        return pb.ListPendingResponse(requests=[convert.request_pb(q) for q in self._h.list_pending(p, r.model_name)])

    def GetDecision(self, p: Principal, r: pb.GetDecisionRequest) -> pb.GetDecisionResponse:
        return pb.GetDecisionResponse(request=convert.request_pb(self._h.get_request(p, r.request_id)))

    def GetDeploymentPlan(self, p: Principal, r: pb.GetDeploymentPlanRequest) -> pb.GetDeploymentPlanResponse:
        return pb.GetDeploymentPlanResponse(plan=convert.plan_pb(self._h.deployment_plan(p, r.model_name)))

    def ListDeploymentPlans(self, p: Principal, r: pb.ListDeploymentPlansRequest) -> pb.ListDeploymentPlansResponse:
        return pb.ListDeploymentPlansResponse(plans=[convert.plan_pb(plan) for plan in self._h.deployment_plans(p)])

    def ListAuditEntries(self, p: Principal, r: pb.ListAuditEntriesRequest) -> pb.ListAuditEntriesResponse:
        entries = self._h.audit_entries(
            p,
            model_name=r.model_name or None,
            version=r.version or None,
            request_id=r.request_id or None,
            since=time_of(r, "since"),
            until=time_of(r, "until"),
        )
        return pb.ListAuditEntriesResponse(entries=[entry_pb(e) for e in entries])

    def GetServedAt(self, p: Principal, r: pb.GetServedAtRequest) -> pb.GetServedAtResponse:
        served = self._h.served_at(p, r.model_name, time_of(r, "at") or datetime.now(UTC))
        response = pb.GetServedAtResponse(plan=convert.plan_pb(served.plan), role=served.role)
        if served.request is not None:
            response.request.CopyFrom(convert.request_pb(served.request))
        return response

    def VerifyAudit(self, p: Principal, r: pb.VerifyAuditRequest) -> pb.VerifyAuditResponse:
        result = self._h.verify_audit(p, _published(r))
        return pb.VerifyAuditResponse(
            ok=result.ok,
            entries=result.entries,
            checkpoints=result.checkpoints,
            first_bad_seq=result.first_bad_seq or 0,
            problem=result.problem,
            published_checkpoints=result.published,
            foreign_checkpoints=result.foreign,
        )

    def ExportAudit(self, p: Principal, r: pb.ExportAuditRequest) -> pb.ExportAuditResponse:
        lines = self._h.export_audit(p, r.model_name, time_of(r, "since"), time_of(r, "until"))
        return pb.ExportAuditResponse(lines=lines)

    def GetModelCard(self, p: Principal, r: pb.GetModelCardRequest) -> pb.GetModelCardResponse:
        model_card = self._h.model_card(p, r.model_name, r.version)
        return pb.GetModelCardResponse(json=json.dumps(model_card, indent=2), markdown=card.render_markdown(model_card))

    def TracePrediction(self, p: Principal, r: pb.TracePredictionRequest) -> pb.TracePredictionResponse:
        if not r.request_id:
            raise InvalidArgument("request_id is required")
        document, signing_key = self._h.trace_prediction(p, r.request_id)
        return pb.TracePredictionResponse(document=document, key_id=signing_key)


def entry_pb(entry: audit.AuditEntry) -> pb.AuditEntry:
    message = pb.AuditEntry(
        seq=entry.seq,
        kind=entry.kind,
        event_id=entry.event_id,
        source=entry.source,
        model_name=entry.model_name,
        version=entry.version,
        request_id=entry.request_id,
        body=entry.body,
        prev_hash=entry.prev_hash,
        hash=entry.hash,
    )
    message.recorded_at.FromDatetime(entry.recorded_at)
    return message


def _published(r: pb.VerifyAuditRequest) -> list[audit.Checkpoint]:
    try:
        return [convert.checkpoint_of(c) for c in r.published]
    except ValueError:  # a Timestamp out of range
        raise InvalidArgument("a published checkpoint has an invalid signed_at") from None
