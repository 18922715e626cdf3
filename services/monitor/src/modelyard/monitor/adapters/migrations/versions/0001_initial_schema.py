"""initial schema

Revision ID: 0001
Revises:

Exactly the schema the monitor made with `metadata.create_all` before it used migrations (constraints keep the
database's default names), so such a database is stamped at this revision rather than migrated.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modelyard.sql.migrations import outbox_columns

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


def upgrade() -> None:
    op.create_table(
        "outbox",
        *outbox_columns(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_outbox_pending", "outbox", ["sent_at", "id"])

    op.create_table(
        "profiles",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.BigInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_profiles_version", "profiles", ["model_name", "model_version", "active"])

    op.create_table(
        "versions",
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.BigInteger(), nullable=False),
        sa.Column("reference_id", sa.String(length=200), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("model_name", "model_version"),
    )
    op.create_table(
        "window_chunks",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.BigInteger(), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_chunks_window", "window_chunks", ["model_name", "model_version", "slot", "part"])

    op.create_table(
        "windows",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.BigInteger(), nullable=False),
        sa.Column("window_id", sa.String(length=64), nullable=False),
        sa.Column("reference_id", sa.String(length=200), nullable=False),
        sa.Column("tested", sa.Boolean(), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_name", "model_version", "window_id"),
    )
    op.create_table(
        "incidents",
        sa.Column("incident_id", sa.String(length=64), nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.BigInteger(), nullable=False),
        sa.Column("signal", sa.String(length=32), nullable=False),
        sa.Column("feature", sa.String(length=255), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("opened_at", sa.Float(), nullable=False),
        sa.Column("resolved_at", sa.Float(), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("reference_id", sa.String(length=200), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("incident_id"),
    )
    op.create_index("ix_incidents_model", "incidents", ["model_name", "open"])

    op.create_table(
        "pending_predictions",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.BigInteger(), nullable=False),
        sa.Column("event_time", sa.Float(), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("stored_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_pending_predictions_stored_at", "pending_predictions", ["stored_at"])

    op.create_table(
        "labels",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.BigInteger(), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("event_time", sa.Float(), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("truth_label", sa.String(length=255), nullable=True),
        sa.Column("truth_value", sa.Float(), nullable=True),
        sa.Column("stored_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_labels_version", "labels", ["model_name", "model_version", "slot"])

    op.create_table(
        "slot_counts",
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.BigInteger(), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("predictions", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model_name", "model_version", "slot"),
    )
    op.create_table(
        "seen_events",
        sa.Column("seq", _id, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )


def downgrade() -> None:
    op.drop_table("seen_events")
    op.drop_table("slot_counts")
    op.drop_index("ix_labels_version", table_name="labels")
    op.drop_table("labels")
    op.drop_index("ix_pending_predictions_stored_at", table_name="pending_predictions")
    op.drop_table("pending_predictions")
    op.drop_index("ix_incidents_model", table_name="incidents")
    op.drop_table("incidents")
    op.drop_table("windows")
    op.drop_index("ix_chunks_window", table_name="window_chunks")
    op.drop_table("window_chunks")
    op.drop_table("versions")
    op.drop_index("ix_profiles_version", table_name="profiles")
    op.drop_table("profiles")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
