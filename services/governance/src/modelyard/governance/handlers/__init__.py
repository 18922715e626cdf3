"""The governance use cases: take domain objects and ports, return results and queue events.

Each use case is one transaction; registry alias moves happen after it commits, so a failed transaction never moves
an alias. One module per use case group (promotions, deployments, audit) over the ports and policy of `base`;
`GovernanceHandlers` is all of them, which is what the transports and tests work with.
"""

from __future__ import annotations

from modelyard.governance.handlers.audit import AuditUseCases
from modelyard.governance.handlers.base import (
    LIST_REQUESTS,
    READ_AUDIT,
    READ_CARDS,
    READ_PLANS,
    READ_REQUESTS,
    REQUEST,
)
from modelyard.governance.handlers.deployments import AliasCheck, DeploymentUseCases, ServedAt
from modelyard.governance.handlers.promotions import PromotionUseCases
from modelyard.governance.handlers.provenance import ProvenanceUseCases


class GovernanceHandlers(PromotionUseCases, DeploymentUseCases, AuditUseCases, ProvenanceUseCases):
    """Every governance use case, over one store, registry catalog, evaluator and policy."""


__all__ = [
    "LIST_REQUESTS",
    "READ_AUDIT",
    "READ_CARDS",
    "READ_PLANS",
    "READ_REQUESTS",
    "REQUEST",
    "AliasCheck",
    "GovernanceHandlers",
    "ServedAt",
]
