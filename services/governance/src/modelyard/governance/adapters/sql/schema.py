"""The governance database schema (SQLAlchemy Core); migrations in `migrations/` build it."""

from __future__ import annotations

import sqlalchemy as sa

from modelyard.sql.engine import UTCDateTime
from modelyard.sql.outbox import outbox_table

metadata = sa.MetaData()

requests = sa.Table(
    "promotion_requests",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("version", sa.BigInteger(), nullable=False),
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("target_alias", sa.String(255), nullable=False),
    sa.Column("requested_by", sa.String(255), nullable=False),
    sa.Column("registered_by", sa.String(255), nullable=False),
    sa.Column("policy_hash", sa.String(80), nullable=False),
    sa.Column("required_approvals", sa.Integer(), nullable=False),
    sa.Column("approver_role", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("checks", sa.JSON(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("decided_by", sa.String(1024), nullable=False),
    sa.Column("decided_at", UTCDateTime(), nullable=True),
    sa.Index("ix_promotion_requests_open", "state", "model_name", "target_alias"),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("request_id", sa.String(64), sa.ForeignKey("promotion_requests.id"), primary_key=True),
    sa.Column("approver", sa.String(255), primary_key=True),
    sa.Column("digest", sa.String(80), primary_key=True),
    sa.Column("approved_at", UTCDateTime(), nullable=False),
)

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("model_name", sa.String(255), primary_key=True),
    sa.Column("state", sa.JSON(), nullable=False),
)

deployment_history = sa.Table(
    "deployment_history",
    metadata,
    sa.Column("model_name", sa.String(255), primary_key=True),
    sa.Column("revision", sa.BigInteger(), primary_key=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("alias", sa.String(255), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("candidate_version", sa.BigInteger(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("plan", sa.JSON(), nullable=False),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("incident_id", sa.String(255), primary_key=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("version", sa.BigInteger(), nullable=False),
    sa.Column("open", sa.Boolean(), nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(255), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(255), nullable=False, index=True),
    sa.Column("version", sa.BigInteger(), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# One row: the chain's head. Appenders lock it (SELECT ... FOR UPDATE) so that concurrent appends on PostgreSQL
# queue instead of forking the chain; SQLite serialises writers with BEGIN IMMEDIATE anyway.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("signed_at", UTCDateTime(), nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("signature", sa.String(128), nullable=False),
)

outbox = outbox_table(metadata)
