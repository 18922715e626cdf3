"""Governance's Prometheus metrics (served on /metrics by the runtime)."""

from prometheus_client import Counter

ROLLBACKS = Counter("modelyard_governance_rollbacks", "Rollbacks ordered after a monitor alert", ["model"])
AUDIT_SIGNING_REFUSED = Counter(
    "modelyard_governance_audit_signing_refused",
    "Times the audit signer refused to sign the head: the chain does not extend its last checkpoint (tampering)",
)
