"""Governance state in SQLite or PostgreSQL: requests, deployments, the audit chain, the outbox."""
