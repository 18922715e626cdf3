"""What every governance use case shares: the role sets, the ports and policy, and the steps several use cases
take (the promotion rule of a model and alias, publishing an approved plan, moving the alias after commit)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from modelyard.auth import Role
from modelyard.governance import convert
from modelyard.governance.domain.deployment import Deployment, Plan
from modelyard.governance.domain.errors import (
    FailedPrecondition,
)
from modelyard.governance.domain.policy import Policy, PromotionRule
from modelyard.governance.domain.ports import Evaluator, GovernanceStore, ModelCatalog, PredictionLog, Unit
from modelyard.governance.domain.signer import AuditSigner
from modelyard.governance.domain.workflow import PromotionRequest

log = logging.getLogger(__name__)

# Who may do what (admin always may); the access table at the edge uses the same sets.
REQUEST = (Role.PUBLISHER, Role.APPROVER)
LIST_REQUESTS = (Role.VIEWER, Role.PUBLISHER, Role.APPROVER)
READ_REQUESTS = (*LIST_REQUESTS, Role.SERVICE)
READ_PLANS = (Role.VIEWER, Role.SERVICE, Role.PUBLISHER, Role.APPROVER)
READ_AUDIT = (Role.VIEWER, Role.APPROVER)
READ_CARDS = (Role.VIEWER, Role.PUBLISHER, Role.APPROVER)

Clock = Callable[[], datetime]


class UseCases:
    """The ports and policy the use cases work with. Blocking (database, registry calls, onnxruntime): transports
    call the use cases from a worker thread."""

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
        predictions: PredictionLog | None = None,
        signer: AuditSigner | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.evaluator = evaluator
        self.policy = policy
        self.audit_key = audit_key
        self.checkpoint_every = checkpoint_every
        self.clock = clock
        self.predictions = predictions  # the monitor's prediction log, for traces
        self.signer = signer  # the audit key's holder, which signs trace documents

    def _rule(self, model_name: str, alias: str) -> PromotionRule:
        rule = self.policy.promotion_rule(model_name, alias)
        if rule is None:
            raise FailedPrecondition(f"no policy rule covers promoting {model_name!r} to {alias!r}")
        return rule

    def _publish_approved(self, unit: Unit, request: PromotionRequest, plan: Plan) -> None:
        unit.publish(convert.deployment_approved(request, plan), request_id=request.id, version=request.version.version)

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
