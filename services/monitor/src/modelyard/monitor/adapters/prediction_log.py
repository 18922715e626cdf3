"""The prediction log in the store: written with the checkpoint that windowed the predictions, labelled with the
checkpoint that joined their feedback, pruned by the store's housekeeping, read back by request id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelyard.monitor.adapters.schema import incidents, prediction_log, windows
from modelyard.monitor.domain.performance import LabelledPrediction
from modelyard.monitor.domain.prediction_log import LoggedPrediction, LogRow, PredictionLogPolicy, tensors_of


def insert_logged(db: Connection, rows: Sequence[LogRow], logged_at: float) -> None:
    """Hot path (every prediction): one driver-level executemany of the rows as they are; a request id seen before
    keeps its first entry. ON CONFLICT DO NOTHING is both SQLite's and PostgreSQL's."""
    marks = ", ".join(("?",) * 8 if db.dialect.paramstyle == "qmark" else ("%s",) * 8)
    db.exec_driver_sql(
        f"INSERT INTO {prediction_log.name} (request_id, model_name, model_version, digest, plan_revision, "
        f"event_time, window_id, tensors, logged_at) VALUES ({marks}, {float(logged_at)!r}) "
        "ON CONFLICT (request_id) DO NOTHING",
        list(rows),
    )


def label_logged(db: Connection, joined: Sequence[LabelledPrediction]) -> None:
    """The joined labels, on the entries of their predictions."""
    if joined:
        mark = "?" if db.dialect.paramstyle == "qmark" else "%s"
        db.exec_driver_sql(
            f"UPDATE {prediction_log.name} SET truth_label = {mark}, truth_value = {mark} WHERE request_id = {mark}",
            [(x.truth_label, x.truth_value, x.prediction.request_id) for x in joined],
        )


def prune_logged(db: Connection, policy: PredictionLogPolicy, now: float) -> int:
    """Entries past the retention go, then the oldest beyond the row cap; how many went."""
    gone = db.execute(prediction_log.delete().where(prediction_log.c.logged_at < now - policy.retention_s)).rowcount
    excess = (db.scalar(sa.select(sa.func.count()).select_from(prediction_log)) or 0) - policy.max_rows
    if excess > 0:
        oldest = sa.select(prediction_log.c.request_id).order_by(prediction_log.c.logged_at).limit(excess)
        gone += db.execute(
            prediction_log.delete().where(prediction_log.c.request_id.in_(oldest.scalar_subquery()))
        ).rowcount
    return int(gone)


def read_logged(db: Connection, request_id: str) -> LoggedPrediction | None:
    row = db.execute(sa.select(prediction_log).where(prediction_log.c.request_id == request_id)).first()
    if row is None:
        return None
    inputs, outputs = tensors_of(row.tensors)
    truth = row.truth_label if row.truth_label is not None else row.truth_value
    return LoggedPrediction(
        request_id=row.request_id,
        model_name=row.model_name,
        model_version=int(row.model_version),
        digest=row.digest,
        plan_revision=int(row.plan_revision),
        event_time=float(row.event_time),
        window=row.window_id,
        inputs=inputs,
        outputs=outputs,
        truth=truth,
        logged_at=float(row.logged_at),
    )


def window_of(logged: LoggedPrediction) -> sa.Select[Any]:
    """The report of the window the prediction fell into (none while it is open, or when it came too late)."""
    return sa.select(windows.c.report).where(
        windows.c.model_name == logged.model_name,
        windows.c.model_version == logged.model_version,
        windows.c.window_id == logged.window,
    )


def incidents_open_at(logged: LoggedPrediction) -> sa.Select[Any]:
    """The incidents of the prediction's version open at its event time, newest first."""
    at = logged.event_time
    return (
        sa.select(incidents)
        .where(
            incidents.c.model_name == logged.model_name,
            incidents.c.model_version == logged.model_version,
            incidents.c.opened_at <= at,
            sa.or_(incidents.c.resolved_at.is_(None), incidents.c.resolved_at > at),
        )
        .order_by(incidents.c.opened_at.desc())
    )
