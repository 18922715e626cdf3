"""prediction log by request id (provenance)

Revision ID: 0003
Revises: 0002

What each prediction was (version, digest, plan revision, window, joined label), pointing at its row in the tensors
of its batch (one npz block per logged batch), kept for the retention and up to the row cap the settings name, so
that `modelyard trace REQUEST_ID` can answer for it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_log_tensors",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "prediction_log",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("plan_revision", sa.BigInteger(), nullable=False),
        sa.Column("event_time", sa.Float(), nullable=False),
        sa.Column("window_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("batch_row", sa.Integer(), nullable=False),
        sa.Column("truth_label", sa.String(length=255), nullable=True),
        sa.Column("truth_value", sa.Float(), nullable=True),
        sa.Column("logged_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_prediction_log_batch_id", "prediction_log", ["batch_id"])
    op.create_index("ix_prediction_log_logged_at", "prediction_log", ["logged_at"])


def downgrade() -> None:
    op.drop_index("ix_prediction_log_logged_at", table_name="prediction_log")
    op.drop_index("ix_prediction_log_batch_id", table_name="prediction_log")
    op.drop_table("prediction_log")
    op.drop_table("prediction_log_tensors")
