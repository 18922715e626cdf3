"""Governance's Prometheus metrics (served on /metrics by the runtime)."""

from prometheus_client import Counter, Gauge

ROLLBACKS = Counter("modelyard_governance_rollbacks", "Rollbacks ordered after a monitor alert", ["model"])
ALIAS_REPAIRS = Counter(
    "modelyard_governance_alias_repairs", "Registry aliases set back to the plan's primary by reconciliation", ["model"]
)
ALIAS_DIVERGED = Gauge(
    "modelyard_governance_alias_diverged",
    "1 while the registry's alias of a deployed model names another version than governance's plan",
    ["model"],
)
AUDIT_SIGNING_REFUSED = Counter(
    "modelyard_governance_audit_signing_refused",
    "Times the audit signer refused to sign the head: the chain does not extend its last checkpoint (tampering)",
)
