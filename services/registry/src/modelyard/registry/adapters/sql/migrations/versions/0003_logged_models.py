"""logged models

Revision ID: 0003
Revises: 0002

MLflow 3's logged models (what `mlflow.<flavor>.log_model` creates): their parameters, metrics, tags and files, and
the run outputs that name them.
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
        "logged_models",
        sa.Column("model_id", sa.String(length=34), nullable=False),
        sa.Column("experiment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("source_run_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=False),
        sa.Column("model_type", sa.String(length=500), nullable=False),
        sa.Column("creator", sa.String(length=255), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiments.id"], name=op.f("fk_logged_models_experiment_id_experiments")
        ),
        sa.ForeignKeyConstraint(["source_run_id"], ["runs.run_id"], name=op.f("fk_logged_models_source_run_id_runs")),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_logged_models")),
    )
    with op.batch_alter_table("logged_models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_logged_models_experiment_id"), ["experiment_id"], unique=False)

    op.create_table(
        "logged_model_artifacts",
        sa.Column("model_id", sa.String(length=34), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["logged_models.model_id"], name=op.f("fk_logged_model_artifacts_model_id_logged_models")
        ),
        sa.PrimaryKeyConstraint("model_id", "path", name=op.f("pk_logged_model_artifacts")),
    )
    with op.batch_alter_table("logged_model_artifacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_logged_model_artifacts_digest"), ["digest"], unique=False)

    op.create_table(
        "logged_model_metrics",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.String(length=34), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["logged_models.model_id"], name=op.f("fk_logged_model_metrics_model_id_logged_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logged_model_metrics")),
    )
    with op.batch_alter_table("logged_model_metrics", schema=None) as batch_op:
        batch_op.create_index("ix_logged_model_metrics_key", ["model_id", "key"], unique=False)

    op.create_table(
        "logged_model_params",
        sa.Column("model_id", sa.String(length=34), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["logged_models.model_id"], name=op.f("fk_logged_model_params_model_id_logged_models")
        ),
        sa.PrimaryKeyConstraint("model_id", "key", name=op.f("pk_logged_model_params")),
    )
    op.create_table(
        "logged_model_tags",
        sa.Column("model_id", sa.String(length=34), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["logged_models.model_id"], name=op.f("fk_logged_model_tags_model_id_logged_models")
        ),
        sa.PrimaryKeyConstraint("model_id", "key", name=op.f("pk_logged_model_tags")),
    )
    op.create_table(
        "run_outputs",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=34), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["logged_models.model_id"], name=op.f("fk_run_outputs_model_id_logged_models")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name=op.f("fk_run_outputs_run_id_runs")),
        sa.PrimaryKeyConstraint("run_id", "model_id", name=op.f("pk_run_outputs")),
    )


def downgrade() -> None:
    op.drop_table("run_outputs")
    op.drop_table("logged_model_tags")
    op.drop_table("logged_model_params")
    with op.batch_alter_table("logged_model_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_logged_model_metrics_key")

    op.drop_table("logged_model_metrics")
    with op.batch_alter_table("logged_model_artifacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logged_model_artifacts_digest"))

    op.drop_table("logged_model_artifacts")
    with op.batch_alter_table("logged_models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logged_models_experiment_id"))

    op.drop_table("logged_models")
