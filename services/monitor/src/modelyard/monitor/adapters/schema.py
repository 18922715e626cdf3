"""The monitor's tables (SQLAlchemy Core). Changing them means a new Alembic revision in migrations/versions/."""

from __future__ import annotations

import sqlalchemy as sa

from modelyard.sql.outbox import outbox_table

metadata = sa.MetaData()
outbox = outbox_table(metadata)
profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.BigInteger, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Index("ix_profiles_version", "model_name", "model_version", "active"),
)
versions = sa.Table(
    "versions",
    metadata,
    sa.Column("model_name", sa.String(255), primary_key=True),
    sa.Column("model_version", sa.BigInteger, primary_key=True),
    sa.Column("reference_id", sa.String(200), nullable=False),
    sa.Column("state", sa.Text, nullable=False),
)
chunks = sa.Table(
    "window_chunks",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.BigInteger, nullable=False),
    sa.Column("slot", sa.BigInteger, nullable=False),
    sa.Column("part", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Index("ix_chunks_window", "model_name", "model_version", "slot", "part"),
)
windows = sa.Table(
    "windows",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.BigInteger, nullable=False),
    sa.Column("window_id", sa.String(64), nullable=False),
    sa.Column("reference_id", sa.String(200), nullable=False),
    sa.Column("tested", sa.Boolean, nullable=False),
    sa.Column("report", sa.Text, nullable=False),
    sa.UniqueConstraint("model_name", "model_version", "window_id"),
)
incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("incident_id", sa.String(64), primary_key=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.BigInteger, nullable=False),
    sa.Column("signal", sa.String(32), nullable=False),
    sa.Column("feature", sa.String(255), nullable=False),
    sa.Column("severity", sa.Integer, nullable=False),
    sa.Column("open", sa.Boolean, nullable=False),
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("resolved_at", sa.Float, nullable=True),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("reference_id", sa.String(200), nullable=False),
    sa.Column("config_hash", sa.String(64), nullable=False),
    sa.Index("ix_incidents_model", "model_name", "open"),
)
pending = sa.Table(
    "pending_batches",  # predictions waiting for their labels: a block per event of a version (adapters/pending.py)
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.BigInteger, nullable=False),
    sa.Column("stored_at", sa.Float, nullable=False, index=True),
    sa.Column("request_ids", sa.Text, nullable=False),  # JSON list, one per row ("" for a row without one)
    sa.Column("data", sa.LargeBinary, nullable=False),  # the rows' predictions, column-wise
    sa.Column("taken", sa.LargeBinary, nullable=True),  # rows already labelled (a bit each), none when NULL
    sa.Column("waiting", sa.BigInteger, nullable=False),  # rows with a request id not yet labelled
    sqlite_autoincrement=True,  # an id is never reused (the index in memory knows blocks by id)
)
labels = sa.Table(
    "labels",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.BigInteger, nullable=False),
    sa.Column("slot", sa.BigInteger, nullable=False),
    sa.Column("event_time", sa.Float, nullable=False),
    sa.Column("label", sa.String(255), nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("truth_label", sa.String(255), nullable=True),
    sa.Column("truth_value", sa.Float, nullable=True),
    sa.Column("stored_at", sa.Float, nullable=False),
    sa.Column("features", sa.Text, nullable=True),
    sa.Index("ix_labels_version", "model_name", "model_version", "slot"),
)
snapshots = sa.Table(
    "snapshots",  # the one snapshot of labelled traffic taken per incident (retraining)
    metadata,
    sa.Column("incident_id", sa.String(64), primary_key=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.BigInteger, nullable=False),
    sa.Column("digest", sa.String(100), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("label_column", sa.String(255), nullable=False),
    sa.Column("windows", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_snapshots_model", "model_name", "created_at"),
)
slot_counts = sa.Table(
    "slot_counts",
    metadata,
    sa.Column("model_name", sa.String(255), primary_key=True),
    sa.Column("model_version", sa.BigInteger, primary_key=True),
    sa.Column("slot", sa.BigInteger, primary_key=True),
    sa.Column("predictions", sa.BigInteger, nullable=False),
)
stream_positions = sa.Table(
    "stream_positions",  # the next offset to read of each input partition, written with the state it produced
    metadata,
    sa.Column("topic", sa.String(255), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
)
prediction_log_batches = sa.Table(
    "prediction_log_batches",  # what one batch's predictions of a version were, for provenance
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.BigInteger, nullable=False),
    sa.Column("digest", sa.String(100), nullable=False),
    sa.Column("logged_at", sa.Float, nullable=False, index=True),
    # Of its records in prediction_log (the row cap counts them); NULL until they are indexed.
    sa.Column("entries", sa.BigInteger, nullable=True, index=True),
    sa.Column("request_ids", sa.Text, nullable=False),  # JSON, of its records ("": none); compared on every lookup
    sa.Column("records", sa.Text, nullable=False),  # JSON: its records' event times, plan revisions and windows
    sa.Column("tensors", sa.LargeBinary, nullable=False),  # as the decoder flattened them
)
prediction_log = sa.Table(
    "prediction_log",  # a logged prediction by its request id's key; bounded by retention and a row cap
    metadata,
    # A 62-bit hash of the request id (the next free one of the 8 after it when two ids collide), compared with the
    # batch's request id on every lookup: an integer primary key (SQLite's rowid), narrow rows, added in bulk.
    sa.Column(
        "request_key", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=False
    ),
    sa.Column("batch_id", sa.BigInteger, nullable=False, index=True),  # its batch (ids only grow: an append) ...
    sa.Column("batch_row", sa.Integer, nullable=False),  # ... and its record in it
    sa.Column("truth_label", sa.String(255), nullable=True),
    sa.Column("truth_value", sa.Float, nullable=True),
)
