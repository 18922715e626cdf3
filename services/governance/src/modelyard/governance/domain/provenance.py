"""Prediction provenance: the trace of one prediction as a signed JSON document that verifies offline.

The document names what answered (model, version, artifact digest, plan revision), the deployment plan of that
revision and the promotion request that put the version in place (who approved it and when, the policy hash, the
checks' evidence), what the monitor logged (tensors, the window it fell into, incidents open then) and the audit
entries it rests on (seq and hash). It is signed with governance's audit key, the key an audit export carries in its
header, so `verify_trace` needs nothing but the document and an export of the model's audit trail: the signature
must hold under the export's key, the export's chain must hold, and every cited entry must be in it with its hash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from modelyard.events.signing import key_id
from modelyard.governance.domain.audit import AuditEntry, canonical_json, verify_export
from modelyard.governance.domain.deployment import Plan
from modelyard.governance.domain.workflow import PromotionRequest

TRACE_TYPE = "modelyard.prediction-trace/v1"
# Signatures of trace documents cannot be replayed as checkpoint signatures of the same key, nor the reverse.
_CONTEXT = b"modelyard-prediction-trace:"


@dataclass(frozen=True)
class PredictionFacts:
    """What the monitor logged about one prediction: the fields a trace is keyed on, and its whole answer."""

    request_id: str
    model_name: str
    version: int
    digest: str
    plan_revision: int  # 0: the record predates plan revisions in the stream
    event_time: datetime
    monitor: Mapping[str, Any]  # the monitor's answer as JSON: the prediction, its window, incidents open then


@dataclass(frozen=True)
class TraceVerification:
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


def trace_document(
    facts: PredictionFacts,
    plan: Plan | None,
    request: PromotionRequest | None,
    cited: Sequence[AuditEntry],
    issued_at: datetime,
) -> dict[str, Any]:
    """The unsigned trace of one prediction."""
    return {
        "type": TRACE_TYPE,
        "request_id": facts.request_id,
        "issued_at": issued_at.isoformat(),
        "model_name": facts.model_name,
        "version": facts.version,
        "artifact_digest": facts.digest,
        "plan_revision": facts.plan_revision,
        "event_time": facts.event_time.isoformat(),
        "plan": asdict(plan) if plan is not None else None,
        "promotion": _promotion(request, facts.digest) if request is not None else None,
        "monitor": dict(facts.monitor),
        "audit_entries": [
            {"seq": e.seq, "hash": e.hash, "kind": e.kind, "recorded_at": e.recorded_at.isoformat()} for e in cited
        ],
    }


def sign_trace(document: Mapping[str, Any], signing_key_id: str, sign: Callable[[bytes], bytes]) -> dict[str, Any]:
    """The document with the signing key's id and its Ed25519 signature (hex) over the canonical JSON of the rest."""
    unsigned = {k: v for k, v in document.items() if k != "signature"} | {"key_id": signing_key_id}
    return unsigned | {"signature": sign(_message(unsigned)).hex()}


def verify_trace(document: Mapping[str, Any], export: Iterable[dict[str, Any]]) -> TraceVerification:
    """Offline: the export's chain holds, the document is signed by the key the export carries, and every audit
    entry the document cites is in the export with the hash the document names."""
    if document.get("type") != TRACE_TYPE or not isinstance(document.get("signature"), str):
        return TraceVerification(f"not a signed prediction trace (type {TRACE_TYPE!r} with a signature)")
    records = list(export)
    chain = verify_export(records)
    if not chain.ok:
        return TraceVerification(f"the audit export does not verify: {chain.problem}")
    header = records[0]
    public_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(header["public_key"]))
    if key_id(public_key) != document.get("key_id"):
        return TraceVerification(
            f"the trace names key {document.get('key_id')!r}, the audit export carries key {key_id(public_key)!r}"
        )
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    try:
        public_key.verify(bytes.fromhex(document["signature"]), _message(unsigned))
    except (InvalidSignature, ValueError):
        return TraceVerification("the signature does not match the document: it was changed after it was signed")
    hashes = {int(r["seq"]): r["hash"] for r in records if r.get("type") == "entry"}
    for cited in document.get("audit_entries") or []:
        seq = int(cited["seq"])
        if seq not in hashes:
            return TraceVerification(f"audit entry {seq} that the trace cites is not in the export's hash chain")
        if hashes[seq] != cited["hash"]:
            return TraceVerification(f"audit entry {seq} has another hash in the export than the trace cites")
    return TraceVerification()


def _message(unsigned: Mapping[str, Any]) -> bytes:
    return _CONTEXT + canonical_json(unsigned).encode()


def _promotion(request: PromotionRequest, digest: str) -> dict[str, Any]:
    """Who approved the version and when (approvals of the digest that answered only), on what evidence."""
    return {
        "request_id": request.id,
        "target_alias": request.target_alias,
        "state": request.state.value,
        "requested_by": request.requested_by,
        "registered_by": request.registered_by,
        "policy_hash": request.policy_hash,
        "approved_digest": request.version.digest,
        "digest_matches": request.version.digest == digest,
        "approvals": [
            {"approver": a.approver, "at": a.at.isoformat()} for a in request.approvals if a.digest == digest
        ],
        "checks": [
            {"name": c.name, "passed": c.passed, "detail": c.detail, "evidence": dict(c.evidence)}
            for c in request.checks
        ],
        "decided_by": request.decided_by,
        "decided_at": request.decided_at.isoformat() if request.decided_at else None,
    }
