"""Governance's access table: who may call each method (gRPC) and its REST route of the same name.

The role sets are the handlers' own. Approve and Reject admit any known caller: who may approve is the policy's
business (each rule names its approver role), a requester may withdraw their own request, and nobody may approve
what they requested or registered; the handlers decide that per request.
"""

from __future__ import annotations

from modelyard.access import ANY_ROLE, Rule, roles
from modelyard.governance.handlers import LIST_REQUESTS, READ_AUDIT, READ_CARDS, READ_PLANS, READ_REQUESTS, REQUEST

ACCESS: dict[str, Rule] = {
    "RequestPromotion": roles(REQUEST),
    "Approve": ANY_ROLE,
    "Reject": ANY_ROLE,
    "ListPending": roles(LIST_REQUESTS),
    "GetDecision": roles(READ_REQUESTS),
    "GetDeploymentPlan": roles(READ_PLANS),
    "ListDeploymentPlans": roles(READ_PLANS),
    "ListAuditEntries": roles(READ_AUDIT),
    "GetServedAt": roles(READ_AUDIT),
    "VerifyAudit": roles(READ_AUDIT),
    "ExportAudit": roles(READ_AUDIT),
    "GetModelCard": roles(READ_CARDS),
    "TracePrediction": roles(READ_AUDIT),
}
