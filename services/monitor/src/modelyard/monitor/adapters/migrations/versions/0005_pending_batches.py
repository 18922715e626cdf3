"""predictions waiting for labels stored per batch

Revision ID: 0005
Revises: 0004

`pending_predictions` (a row per prediction) becomes `pending_batches` (a block per event of a version, with a bit
per row for the ones labelled). The predictions waiting in an existing database move over, a block per version.
"""

from __future__ import annotations

import json

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_OLD = ("request_id", "model_name", "model_version", "event_time", "label", "score", "value", "features", "stored_at")


def upgrade() -> None:
    from modelyard.monitor.adapters.pending import block_to_bytes  # the format the store reads
    from modelyard.monitor.domain.performance import PendingBatch

    blocks = op.create_table(
        "pending_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", sa.Float(), nullable=False),
        sa.Column("request_ids", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("taken", sa.LargeBinary(), nullable=True),
        sa.Column("waiting", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_pending_batches_stored_at", "pending_batches", ["stored_at"])
    old = sa.table("pending_predictions", *(sa.column(c) for c in _OLD))
    rows = op.get_bind().execute(sa.select(old).order_by(old.c.model_name, old.c.model_version, old.c.stored_at))
    by_version: dict[tuple[str, int], list[sa.Row[tuple[object, ...]]]] = {}
    for row in rows:
        by_version.setdefault((row.model_name, int(row.model_version)), []).append(row)
    for (model_name, model_version), group in by_version.items():
        with_features = all(r.features is not None for r in group)
        batch = PendingBatch(
            model_name,
            model_version,
            [r.request_id for r in group],
            np.array([r.event_time for r in group], dtype=np.float64),
            [r.label or "" for r in group],
            np.array([np.nan if r.score is None else r.score for r in group], dtype=np.float64),
            np.array([np.nan if r.value is None else r.value for r in group], dtype=np.float64),
            [r.features for r in group] if with_features else None,
        )
        op.bulk_insert(
            blocks,
            [
                {
                    "model_name": model_name,
                    "model_version": model_version,
                    "stored_at": min(float(r.stored_at) for r in group),
                    "request_ids": json.dumps(batch.request_ids),
                    "data": block_to_bytes(batch),
                    "taken": None,
                    "waiting": len(group),
                }
            ],
        )
    op.drop_index("ix_pending_predictions_stored_at", table_name="pending_predictions")
    op.drop_table("pending_predictions")


def downgrade() -> None:
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
        sa.Column("features", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_pending_predictions_stored_at", "pending_predictions", ["stored_at"])
    op.drop_index("ix_pending_batches_stored_at", table_name="pending_batches")
    op.drop_table("pending_batches")
