"""prediction log under integer keys

Revision ID: 0006
Revises: 0005

The prediction log's per-prediction row was its request id (a text primary key, the random insert into its index
most of a row's cost), its version's columns and two more indexes; now a batch's columns are one row of
`prediction_log_batches` (with its records' request ids, event times, plan revisions and windows) and each
prediction a narrow row under an integer key hashed from its request id (adapters/prediction_log.py). The entries
logged so far are moved over, with their labels; a downgrade moves them back.
"""

from __future__ import annotations

import json
from itertools import groupby

import sqlalchemy as sa
from alembic import op
from alembic.script import ScriptDirectory

from modelyard.monitor.adapters.prediction_log import index_logged
from modelyard.monitor.adapters.schema import prediction_log, prediction_log_batches

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    db = op.get_bind()
    op.drop_index("ix_prediction_log_logged_at", table_name="prediction_log")
    op.drop_index("ix_prediction_log_batch_id", table_name="prediction_log")
    op.rename_table("prediction_log", "prediction_log_0003")
    old, blocks = _old_tables("prediction_log_0003")
    op.create_table(
        "prediction_log_batches",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("logged_at", sa.Float(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=True),
        sa.Column("request_ids", sa.Text(), nullable=False),
        sa.Column("records", sa.Text(), nullable=False),
        sa.Column("tensors", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_prediction_log_batches_logged_at", "prediction_log_batches", ["logged_at"])
    op.create_index("ix_prediction_log_batches_entries", "prediction_log_batches", ["entries"])
    op.create_table(
        "prediction_log",
        sa.Column("request_key", _ID, autoincrement=False, nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("batch_row", sa.Integer(), nullable=False),
        sa.Column("truth_label", sa.String(length=255), nullable=True),
        sa.Column("truth_value", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("request_key"),
    )
    op.create_index("ix_prediction_log_batch_id", "prediction_log", ["batch_id"])
    query = sa.select(old, blocks.c.data).join(blocks, blocks.c.id == old.c.batch_id)
    rows = db.execute(query.order_by(old.c.batch_id, old.c.batch_row)).all()
    labelled: list[tuple[int, int, str | None, float | None]] = []  # new batch, record, label
    for _, group in groupby(rows, key=lambda r: r.batch_id):
        entries = list(group)
        size = max(r.batch_row for r in entries) + 1  # records without an entry keep empty values
        records: list[list[object]] = [[""] * size, [0.0] * size, [0] * size, [""] * size]
        for r in entries:
            for column, value in zip(records, (r.request_id, r.event_time, r.plan_revision, r.window_id), strict=True):
                column[r.batch_row] = value
        first = entries[0]
        insert = prediction_log_batches.insert().values(
            model_name=first.model_name,
            model_version=first.model_version,
            digest=first.digest,
            logged_at=first.logged_at,
            request_ids=json.dumps(records[0]),
            records=json.dumps(records[1:], allow_nan=False),
            tensors=first.data,
        )
        batch_id = db.execute(insert.returning(prediction_log_batches.c.id)).scalar_one()
        labelled += [(batch_id, r.batch_row, r.truth_label, r.truth_value) for r in entries]
    index_logged(db)
    for batch_id, row, truth_label, truth_value in labelled:
        if truth_label is not None or truth_value is not None:
            where = (prediction_log.c.batch_id == batch_id) & (prediction_log.c.batch_row == row)
            db.execute(prediction_log.update().where(where).values(truth_label=truth_label, truth_value=truth_value))
    op.drop_table("prediction_log_0003")
    op.drop_table("prediction_log_tensors")


def downgrade() -> None:
    db = op.get_bind()
    op.drop_index("ix_prediction_log_batch_id", table_name="prediction_log")
    op.rename_table("prediction_log", "prediction_log_0006")
    config = op.get_context().config
    if config is None:
        raise RuntimeError("this downgrade runs from alembic's commands, which name the scripts")
    ScriptDirectory.from_config(config).get_revision("0003").module.upgrade()  # 0003's tables, by 0003 itself
    old, blocks = _old_tables("prediction_log")
    entries = sa.table(
        "prediction_log_0006", *(sa.column(c) for c in ("batch_id", "batch_row", "truth_label", "truth_value"))
    )
    batches = prediction_log_batches
    query = sa.select(entries, batches).join(batches, batches.c.id == entries.c.batch_id)
    for batch_id, group in groupby(db.execute(query.order_by(entries.c.batch_id)).all(), key=lambda r: r.batch_id):
        rows = list(group)
        request_ids = json.loads(rows[0].request_ids)
        event_times, plan_revisions, windows = json.loads(rows[0].records)
        db.execute(blocks.insert().values(id=batch_id, data=rows[0].tensors))
        db.execute(
            old.insert(),
            [
                dict(
                    request_id=request_ids[r.batch_row],
                    model_name=r.model_name,
                    model_version=r.model_version,
                    digest=r.digest,
                    plan_revision=plan_revisions[r.batch_row],
                    event_time=event_times[r.batch_row],
                    window_id=windows[r.batch_row],
                    batch_id=batch_id,
                    batch_row=r.batch_row,
                    truth_label=r.truth_label,
                    truth_value=r.truth_value,
                    logged_at=r.logged_at,
                )
                for r in rows
            ],
        )
    op.drop_table("prediction_log_0006")
    op.drop_index("ix_prediction_log_batches_logged_at", table_name="prediction_log_batches")
    op.drop_index("ix_prediction_log_batches_entries", table_name="prediction_log_batches")
    op.drop_table("prediction_log_batches")


def _old_tables(log_name: str) -> tuple[sa.TableClause, sa.TableClause]:
    """Revision 0003's log (under `log_name`) and blocks, as lightweight tables."""
    columns = "request_id model_name model_version digest plan_revision event_time window_id batch_id batch_row"
    old = sa.table(log_name, *(sa.column(c) for c in (*columns.split(), "truth_label", "truth_value", "logged_at")))
    return old, sa.table("prediction_log_tensors", sa.column("id"), sa.column("data"))
