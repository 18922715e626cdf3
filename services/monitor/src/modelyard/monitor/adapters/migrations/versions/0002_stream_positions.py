"""stream positions instead of handled event ids

Revision ID: 0002
Revises: 0001

Window state is checkpointed with the offsets it covers (`stream_positions`), not with the ids of the events it
handled; the consumer resumes from those offsets. Event ids of a database at 0001 are not carried over: its
consumer group's committed offsets are where it resumes once, after which its checkpoints record positions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_positions",
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition"),
    )
    op.drop_table("seen_events")


def downgrade() -> None:
    op.create_table(
        "seen_events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    op.drop_table("stream_positions")
