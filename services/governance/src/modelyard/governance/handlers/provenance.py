"""Governance use cases: prediction provenance: the signed trace of one prediction (`modelyard trace`)."""

from __future__ import annotations

from datetime import datetime

from modelyard.auth import Principal
from modelyard.governance.domain import provenance
from modelyard.governance.domain.audit import canonical_json
from modelyard.governance.domain.card import DeploymentRecord
from modelyard.governance.domain.errors import FailedPrecondition
from modelyard.governance.domain.provenance import PredictionFacts
from modelyard.governance.domain.workflow import PromotionRequest, RequestState
from modelyard.governance.handlers.base import READ_AUDIT, UseCases


class ProvenanceUseCases(UseCases):
    def trace_prediction(self, principal: Principal, request_id: str) -> tuple[str, str]:
        """The signed trace document of one prediction (canonical JSON) and the key id that signed it; NotFound
        when the monitor has no such prediction."""
        principal.require("trace predictions", READ_AUDIT)
        if self.predictions is None or self.signer is None:
            raise FailedPrecondition("prediction tracing is not configured (no monitor or no audit signer)")
        facts = self.predictions.prediction(request_id)
        with self.store.unit() as unit:
            record = _deployment_of(unit.deployment_history(facts.model_name), facts)
            plan = unit.plan_at(facts.model_name, record.revision) if record else None
            request = unit.get_request(record.request_id) if record and record.request_id else None
            if request is None or request.version.version != facts.version:
                # The plan's revision came from another version's decision (a canary's, a rollback): the approval
                # behind the version that answered is its own latest approved request.
                latest = unit.latest_request_for(facts.model_name, facts.version)
                request = latest if latest is not None and latest.state is RequestState.APPROVED else request
        cited = list(self.store.audit_entries(request_id=request.id)) if request is not None else []
        document = provenance.trace_document(facts, plan, _same_version(request, facts), cited, self.clock())
        signed = provenance.sign_trace(document, self.signer.key_id, self.signer.sign_document)
        return canonical_json(signed), self.signer.key_id


def _deployment_of(history: list[DeploymentRecord], facts: PredictionFacts) -> DeploymentRecord | None:
    """The plan revision the record names, or (older records carry none) the last one in force at its time."""
    if facts.plan_revision:
        return next((r for r in history if r.revision == facts.plan_revision), None)
    before = [r for r in history if datetime.fromisoformat(r.at) <= facts.event_time]
    return before[-1] if before else None


def _same_version(request: PromotionRequest | None, facts: PredictionFacts) -> PromotionRequest | None:
    return request if request is not None and request.version.version == facts.version else None
