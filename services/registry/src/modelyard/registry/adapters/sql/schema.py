"""The registry's tables. Changing them means a new Alembic revision in migrations/versions/."""

from __future__ import annotations

import sqlalchemy as sa

from modelyard.sql.engine import UTCDateTime
from modelyard.sql.outbox import outbox_table

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only

registered_models = sa.Table(
    "registered_models",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("owner", sa.String(255), nullable=False),
    # The last version number handed out; incremented under the row lock so concurrent registrations get
    # distinct, consecutive versions.
    sa.Column("latest_version", sa.Integer(), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("digest", sa.String(71), primary_key=True),
    sa.Column("size_bytes", sa.BigInteger(), nullable=False),
    sa.Column("media_type", sa.String(64), nullable=False),
    # The model's signature or the dataset's schema, as found by ingestion.
    sa.Column("details", sa.JSON(), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.ForeignKey("registered_models.id"), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("digest", sa.ForeignKey("artifacts.digest"), nullable=False, index=True),
    sa.Column("reference_dataset_digest", sa.ForeignKey("artifacts.digest"), nullable=True),
    sa.Column("lineage", sa.JSON(), nullable=False),
    sa.Column("feature_names", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("status_message", sa.Text(), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_id_version"),
)

# Tags of a model (version 0) and of its versions.
tags = sa.Table(
    "tags",
    metadata,
    sa.Column("model_id", sa.ForeignKey("registered_models.id"), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("model_id", sa.ForeignKey("registered_models.id"), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer(), nullable=False),
)

alias_history = sa.Table(
    "alias_history",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.ForeignKey("registered_models.id"), nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("from_version", sa.Integer(), nullable=True),
    sa.Column("to_version", sa.Integer(), nullable=True),
    sa.Column("moved_by", sa.String(255), nullable=False),
    sa.Column("moved_at", UTCDateTime(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Index("ix_alias_history_lookup", "model_id", "alias", "moved_at"),
)

# Experiment tracking (MLflow's model): ids are strings to clients, experiments' a number, runs' a uuid4 hex.
experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(500), nullable=False, unique=True),
    sa.Column("lifecycle_stage", sa.String(16), nullable=False),
    sa.Column("created_ms", sa.BigInteger(), nullable=False),
    sa.Column("updated_ms", sa.BigInteger(), nullable=False),
)

experiment_tags = sa.Table(
    "experiment_tags",
    metadata,
    sa.Column("experiment_id", sa.ForeignKey("experiments.id"), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("experiment_id", sa.ForeignKey("experiments.id"), nullable=False, index=True),
    sa.Column("name", sa.String(250), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("start_ms", sa.BigInteger(), nullable=False),
    sa.Column("end_ms", sa.BigInteger(), nullable=True),
    sa.Column("lifecycle_stage", sa.String(16), nullable=False),
)

run_params = sa.Table(
    "run_params",
    metadata,
    sa.Column("run_id", sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

run_tags = sa.Table(
    "run_tags",
    metadata,
    sa.Column("run_id", sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

# Every logged value (the history); `run_latest_metrics` keeps each metric's latest for search and display.
run_metrics = sa.Table(
    "run_metrics",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.ForeignKey("runs.run_id"), nullable=False),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("step", sa.BigInteger(), nullable=False),
    sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
    sa.Column("value", sa.Float(), nullable=False),
    sa.Index("ix_run_metrics_history", "run_id", "key", "step"),
)

run_latest_metrics = sa.Table(
    "run_latest_metrics",
    metadata,
    sa.Column("run_id", sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("step", sa.BigInteger(), nullable=False),
    sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
    sa.Column("value", sa.Float(), nullable=False),
)

run_inputs = sa.Table(
    "run_inputs",
    metadata,
    sa.Column("run_id", sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("digest", sa.String(128), primary_key=True),
    sa.Column("context", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("details", sa.JSON(), nullable=False),  # source type, source, schema, profile
)

# A run's files by path; the bytes are blobs of the artifact store, named by digest (garbage collection keeps them).
run_artifacts = sa.Table(
    "run_artifacts",
    metadata,
    sa.Column("run_id", sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("digest", sa.String(71), nullable=False, index=True),
    sa.Column("size_bytes", sa.BigInteger(), nullable=False),
)

# MLflow 3's logged models: what `log_model` creates, with its own files, parameters, metrics and tags.
logged_models = sa.Table(
    "logged_models",
    metadata,
    sa.Column("model_id", sa.String(34), primary_key=True),
    sa.Column("experiment_id", sa.ForeignKey("experiments.id"), nullable=False, index=True),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("source_run_id", sa.ForeignKey("runs.run_id"), nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("status_message", sa.Text(), nullable=False),
    sa.Column("model_type", sa.String(500), nullable=False),
    sa.Column("creator", sa.String(255), nullable=False),
    sa.Column("created_ms", sa.BigInteger(), nullable=False),
    sa.Column("updated_ms", sa.BigInteger(), nullable=False),
    sa.Column("lifecycle_stage", sa.String(16), nullable=False),
)

logged_model_params = sa.Table(
    "logged_model_params",
    metadata,
    sa.Column("model_id", sa.ForeignKey("logged_models.model_id"), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

logged_model_tags = sa.Table(
    "logged_model_tags",
    metadata,
    sa.Column("model_id", sa.ForeignKey("logged_models.model_id"), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

logged_model_metrics = sa.Table(
    "logged_model_metrics",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.ForeignKey("logged_models.model_id"), nullable=False),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("step", sa.BigInteger(), nullable=False),
    sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
    sa.Column("value", sa.Float(), nullable=False),
    sa.Column("run_id", sa.String(32), nullable=False),  # the run it was logged to ("" for none)
    sa.Index("ix_logged_model_metrics_key", "model_id", "key"),
)

logged_model_artifacts = sa.Table(
    "logged_model_artifacts",
    metadata,
    sa.Column("model_id", sa.ForeignKey("logged_models.model_id"), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("digest", sa.String(71), nullable=False, index=True),
    sa.Column("size_bytes", sa.BigInteger(), nullable=False),
)

# The logged models a run produced, at a step (MLflow's run outputs).
run_outputs = sa.Table(
    "run_outputs",
    metadata,
    sa.Column("run_id", sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("model_id", sa.ForeignKey("logged_models.model_id"), primary_key=True),
    sa.Column("step", sa.BigInteger(), nullable=False),
)

outbox = outbox_table(metadata)
