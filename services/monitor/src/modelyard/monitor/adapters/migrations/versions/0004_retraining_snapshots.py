"""retraining snapshots

Revision ID: 0004
Revises: 0003

Predictions waiting for their labels, and joined labels, keep their input features (JSON) while the retraining
policy names some signal; `snapshots` records the one snapshot of labelled traffic taken per incident.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pending_predictions", sa.Column("features", sa.Text(), nullable=True))
    op.add_column("labels", sa.Column("features", sa.Text(), nullable=True))
    op.create_table(
        "snapshots",
        sa.Column("incident_id", sa.String(length=64), nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("label_column", sa.String(length=255), nullable=False),
        sa.Column("windows", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id"),
    )
    op.create_index("ix_snapshots_model", "snapshots", ["model_name", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_snapshots_model", table_name="snapshots")
    op.drop_table("snapshots")
    with op.batch_alter_table("labels") as batch:
        batch.drop_column("features")
    with op.batch_alter_table("pending_predictions") as batch:
        batch.drop_column("features")
