"""Governance's Prometheus metrics (served on /metrics by the runtime)."""

from prometheus_client import Counter

ROLLBACKS = Counter("modelyard_governance_rollbacks", "Rollbacks ordered after a monitor alert", ["model"])
