"""The prediction log in the store: written with the checkpoint that windowed the predictions (an npz block of each
batch's tensors, an entry per prediction pointing at its row), labelled with the checkpoint that joined their
feedback, pruned by the store's housekeeping, read back by request id."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelyard.monitor.adapters.schema import incidents, prediction_log, prediction_log_tensors, windows
from modelyard.monitor.domain.performance import LabelledPrediction
from modelyard.monitor.domain.prediction_log import (
    LoggedBatch,
    LoggedPrediction,
    PredictionLogPolicy,
    Tensors,
    record_values,
)
from modelyard.monitor.domain.profile import Role
from modelyard.monitor.domain.records import TensorRows
from modelyard.monitor.domain.windows import WindowId

_HEADER = struct.Struct("<I")  # the block's header length


def insert_logged(db: Connection, batches: Sequence[LoggedBatch], logged_at: float) -> None:
    """Hot path (every batch): one block per batch, then one driver-level executemany of its entries; a request id
    seen before keeps its first entry. ON CONFLICT DO NOTHING is both SQLite's and PostgreSQL's."""
    mark = "?" if db.dialect.paramstyle == "qmark" else "%s"
    marks = ", ".join((mark,) * 8)
    for batch in batches:
        block = prediction_log_tensors.insert().values(data=tensors_to_bytes(batch.tensors))
        batch_id = int(db.execute(block.returning(prediction_log_tensors.c.id)).scalar_one())
        db.exec_driver_sql(
            f"INSERT INTO {prediction_log.name} (request_id, model_name, model_version, digest, plan_revision, "
            f"event_time, window_id, batch_row, batch_id, logged_at) "
            f"VALUES ({marks}, {batch_id}, {float(logged_at)!r}) ON CONFLICT (request_id) DO NOTHING",
            batch.entries,
        )


def label_logged(db: Connection, joined: Sequence[LabelledPrediction]) -> None:
    """The joined labels, on the entries of their predictions."""
    if joined:
        mark = "?" if db.dialect.paramstyle == "qmark" else "%s"
        db.exec_driver_sql(
            f"UPDATE {prediction_log.name} SET truth_label = {mark}, truth_value = {mark} WHERE request_id = {mark}",
            [(x.truth_label, x.truth_value, x.prediction.request_id) for x in joined],
        )


def relabel_logged(
    db: Connection, model_name: str, model_version: int, merged: Sequence[tuple[WindowId, WindowId]]
) -> None:
    """Entries of slivers point at the window each moved into (in order: a sliver may move on again)."""
    log = prediction_log
    for sliver, target in merged:
        db.execute(
            log.update()
            .where(log.c.model_name == model_name, log.c.model_version == model_version, log.c.window_id == str(sliver))
            .values(window_id=str(target))
        )


def prune_logged(db: Connection, policy: PredictionLogPolicy, now: float) -> int:
    """Entries past the retention go, then the oldest beyond the row cap, then the blocks older than every entry
    left (blocks come in the order entries do); how many entries went."""
    log = prediction_log
    gone = db.execute(log.delete().where(log.c.logged_at < now - policy.retention_s)).rowcount
    excess = (db.scalar(sa.select(sa.func.count()).select_from(log)) or 0) - policy.max_rows
    if excess > 0:
        oldest = sa.select(log.c.request_id).order_by(log.c.logged_at).limit(excess)
        gone += db.execute(log.delete().where(log.c.request_id.in_(oldest.scalar_subquery()))).rowcount
    first_kept = sa.select(sa.func.min(log.c.batch_id)).scalar_subquery()
    blocks = prediction_log_tensors
    db.execute(blocks.delete().where(sa.or_(blocks.c.id < first_kept, first_kept.is_(None))))
    return int(gone)


def read_logged(db: Connection, request_id: str) -> LoggedPrediction | None:
    query = sa.select(prediction_log, prediction_log_tensors.c.data).join(
        prediction_log_tensors, prediction_log_tensors.c.id == prediction_log.c.batch_id
    )
    row = db.execute(query.where(prediction_log.c.request_id == request_id)).first()
    if row is None:
        return None
    inputs, outputs = record_values(tensors_from_bytes(bytes(row.data)), int(row.batch_row))
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
        truth=row.truth_label if row.truth_label is not None else row.truth_value,
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


def tensors_to_bytes(tensors: Tensors) -> bytes:
    """A batch's tensor columns in one block: a JSON header (each tensor's role, name, whether it is text, its element
    and record counts, and every string), then every number as float64 and every record's element count as int64,
    little-endian. No pickled objects (the store is not trusted to run code) and no per-tensor framing: this runs for
    every batch."""
    layout: list[list[Any]] = []
    numbers: list[npt.NDArray[np.float64]] = []
    counts: list[npt.NDArray[np.int64]] = []
    strings: list[str] = []
    for (role, name), tensor in tensors.items():
        text = tensor.values.dtype.kind in "OSU"
        layout.append([role.value, name, text, int(tensor.values.size), int(tensor.counts.size)])
        if text:
            strings += tensor.values.tolist()
        else:
            numbers.append(tensor.values.astype("<f8", copy=False))
        counts.append(tensor.counts.astype("<i8", copy=False))
    header = json.dumps({"tensors": layout, "strings": strings}).encode()
    return b"".join(
        (
            _HEADER.pack(len(header)),
            header,
            np.concatenate(numbers).tobytes() if numbers else b"",
            np.concatenate(counts).tobytes() if counts else b"",
        )
    )


def tensors_from_bytes(data: bytes) -> Tensors:
    (size,) = _HEADER.unpack_from(data)
    header = json.loads(data[_HEADER.size : _HEADER.size + size])
    at = _HEADER.size + size
    n_numbers = sum(t[3] for t in header["tensors"] if not t[2])
    numbers = np.frombuffer(data, dtype="<f8", count=n_numbers, offset=at)
    counts = np.frombuffer(data, dtype="<i8", offset=at + 8 * n_numbers)
    strings: list[str] = header["strings"]
    tensors: dict[tuple[Role, str], TensorRows] = {}
    n = s = c = 0
    for role, name, text, size_, records in header["tensors"]:
        if text:
            values: npt.NDArray[np.generic] = np.array(strings[s : s + size_], dtype=str)
            s += size_
        else:
            values = numbers[n : n + size_]
            n += size_
        tensors[(Role(role), name)] = TensorRows(values, counts[c : c + records])
        c += records
    return tensors
