"""experiment tracking

Revision ID: 0002
Revises: 0001

Experiments, runs, their parameters, metric history, tags, dataset inputs and files; the experiment MLflow's
clients use when none is set (id 0, "Default").
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("name", name=op.f("uq_experiments_name")),
    )
    now_ms = int(time.time() * 1000)
    experiments = sa.table(
        "experiments",
        sa.column("id", sa.BigInteger()),
        sa.column("name", sa.String()),
        sa.column("lifecycle_stage", sa.String()),
        sa.column("created_ms", sa.BigInteger()),
        sa.column("updated_ms", sa.BigInteger()),
    )
    op.bulk_insert(
        experiments,
        [{"id": 0, "name": "Default", "lifecycle_stage": "active", "created_ms": now_ms, "updated_ms": now_ms}],
    )
    op.create_table(
        "experiment_tags",
        sa.Column("experiment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiments.id"], name=op.f("fk_experiment_tags_experiment_id_experiments")
        ),
        sa.PrimaryKeyConstraint("experiment_id", "key", name=op.f("pk_experiment_tags")),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("experiment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"], name=op.f("fk_runs_experiment_id_experiments")),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_runs")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_experiment_id"), ["experiment_id"], unique=False)

    op.create_table(
        "run_artifacts",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name=op.f("fk_run_artifacts_run_id_runs")),
        sa.PrimaryKeyConstraint("run_id", "path", name=op.f("pk_run_artifacts")),
    )
    with op.batch_alter_table("run_artifacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_artifacts_digest"), ["digest"], unique=False)

    op.create_table(
        "run_inputs",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=128), nullable=False),
        sa.Column("context", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name=op.f("fk_run_inputs_run_id_runs")),
        sa.PrimaryKeyConstraint("run_id", "digest", "context", name=op.f("pk_run_inputs")),
    )
    op.create_table(
        "run_latest_metrics",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name=op.f("fk_run_latest_metrics_run_id_runs")),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_run_latest_metrics")),
    )
    op.create_table(
        "run_metrics",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name=op.f("fk_run_metrics_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_metrics")),
    )
    with op.batch_alter_table("run_metrics", schema=None) as batch_op:
        batch_op.create_index("ix_run_metrics_history", ["run_id", "key", "step"], unique=False)

    op.create_table(
        "run_params",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name=op.f("fk_run_params_run_id_runs")),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_run_params")),
    )
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name=op.f("fk_run_tags_run_id_runs")),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_run_tags")),
    )


def downgrade() -> None:
    op.drop_table("run_tags")
    op.drop_table("run_params")
    with op.batch_alter_table("run_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_run_metrics_history")

    op.drop_table("run_metrics")
    op.drop_table("run_latest_metrics")
    op.drop_table("run_inputs")
    with op.batch_alter_table("run_artifacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_artifacts_digest"))

    op.drop_table("run_artifacts")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_experiment_id"))

    op.drop_table("runs")
    op.drop_table("experiment_tags")
    op.drop_table("experiments")
