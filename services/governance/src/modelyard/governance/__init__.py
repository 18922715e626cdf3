"""The Modelyard governance service: approval policies, deployment decisions, rollbacks and the audit trail."""
