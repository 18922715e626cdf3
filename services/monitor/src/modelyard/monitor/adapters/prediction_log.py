"""The prediction log in the store: a row per batch written with the checkpoint that windowed its predictions (its
records' request ids, event times, plan revisions and windows, and a block of its tensors); a narrow entry per
prediction under an integer key hashed from its request id, pointing at its record, added in bulk later (the
store's housekeeping, or the checkpoint that joins labels: `index_logged`); labelled with the checkpoint that joined
their feedback, pruned by the housekeeping, read back by request id (the batches not indexed yet searched too).

Why: a text primary key (the request id) written with each checkpoint cost ~8 us a prediction in SQLite, the most
of it the random insert into its index: each prediction's key landed on a page of its own, which the commit wrote
out. Random keys inserted in one sorted run write each page once for all the keys that land on it.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelyard.monitor.adapters.schema import incidents, prediction_log, prediction_log_batches, windows
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

logger = logging.getLogger(__name__)
_HEADER = struct.Struct("<I")  # the block's header length
PROBES = 8  # keys a request id may take: its hash and the 7 after it, when other ids took those first
_KEY_BITS = 62  # so that a key plus PROBES stays a signed 64-bit integer


def request_keys(request_ids: Sequence[str]) -> list[int]:
    """A 62-bit hash of each request id, the same in every process and version (not Python's salted hash()):
    each character's code point times a fixed odd 64-bit multiplier of its position, summed modulo 2**64, then
    SplitMix64's finaliser. Whole columns in numpy: ~0.1 us an id where hashlib's blake2b takes ~1 us in a loop.
    Not collision-resistant against someone who chooses ids: a collision costs a probe, never a wrong answer."""
    codes = np.array(request_ids, dtype=str)
    width = codes.dtype.itemsize // 4
    points = codes.view(np.uint32).reshape(len(request_ids), width).astype(np.uint64)
    x = (points * _multipliers(width)).sum(axis=1, dtype=np.uint64)
    x ^= x >> np.uint64(31)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    keys: list[int] = (x >> np.uint64(64 - _KEY_BITS)).astype(np.int64).tolist()
    return keys


def _multipliers(width: int) -> npt.NDArray[np.uint64]:
    """SplitMix64's outputs for positions 1.., made odd."""
    z = np.arange(1, width + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (z ^ (z >> np.uint64(31))) | np.uint64(1)


def insert_logged(db: Connection, batches: Sequence[LoggedBatch], logged_at: float) -> None:
    """Hot path (every batch): one driver-level executemany of a row per batch, its entries indexed later
    (`index_logged`)."""
    if not batches:
        return
    rows = [
        (
            batch.model_name,
            batch.model_version,
            batch.digest,
            json.dumps(batch.request_ids),
            json.dumps([batch.event_times, batch.plan_revisions, batch.windows], allow_nan=False),
            tensors_to_bytes(batch.tensors),
        )
        for batch in batches
    ]
    marks = ", ".join(("?" if db.dialect.paramstyle == "qmark" else "%s",) * 6)
    db.exec_driver_sql(
        f"INSERT INTO {prediction_log_batches.name} (model_name, model_version, digest, request_ids, records, tensors, "
        f"logged_at) VALUES ({marks}, {float(logged_at)!r})",
        rows,
    )


def index_logged(db: Connection) -> None:
    """The entries of the batches logged since the last time, in one driver-level executemany in key order, so
    that each page of the key's b-tree is written once for them all rather than once a prediction (the random
    keys of one checkpoint's predictions each wrote a page of their own, the most of what logging cost). Runs
    before labels are joined, before pruning and in the store's housekeeping. A key taken (the id logged before:
    a retried inference, a shadow's copy, or another id with the same hash) leaves the row out; when some were,
    `_settle` keeps first entries and moves colliding ids on. ON CONFLICT DO NOTHING is SQLite's and PostgreSQL's."""
    batches = prediction_log_batches
    fresh = db.execute(sa.select(batches.c.id, batches.c.request_ids).where(batches.c.entries.is_(None))).all()
    if not fresh:
        return
    entries: list[tuple[int, int, int, str]] = []  # key, batch, row, request id
    for batch_id, request_ids in fresh:
        logged = [(row, rid) for row, rid in enumerate(json.loads(request_ids)) if rid]
        keys = request_keys([rid for _, rid in logged])
        entries += [(key, batch_id, row, rid) for key, (row, rid) in zip(keys, logged, strict=True)]
    entries.sort()  # by key, then batch: an id's first entry comes first
    mark = "?" if db.dialect.paramstyle == "qmark" else "%s"
    added = db.exec_driver_sql(
        f"INSERT INTO {prediction_log.name} (request_key, batch_id, batch_row) VALUES ({mark}, {mark}, {mark}) "
        f"ON CONFLICT (request_key) DO NOTHING",
        [entry[:3] for entry in entries],
    ).rowcount
    ids = [batch_id for batch_id, _ in fresh]
    if added < len(entries):
        _settle(db, ids, entries)
    counted: dict[int, int] = dict.fromkeys(ids, 0)
    for at in range(0, len(ids), 500):  # bounded IN lists
        per_batch = sa.select(prediction_log.c.batch_id, sa.func.count()).group_by(prediction_log.c.batch_id)
        for batch_id, n in db.execute(per_batch.where(prediction_log.c.batch_id.in_(ids[at : at + 500]))):
            counted[batch_id] = n
    kept = [{"b_id": batch_id, "b_entries": n} for batch_id, n in counted.items() if n]
    if kept:
        update = batches.update().where(batches.c.id == sa.bindparam("b_id"))
        db.execute(update.values(entries=sa.bindparam("b_entries")), kept)
    empty = [batch_id for batch_id, n in counted.items() if not n]  # nothing new in them: a shadow's copies, say
    for at in range(0, len(empty), 500):
        db.execute(batches.delete().where(batches.c.id.in_(empty[at : at + 500])))


def _settle(db: Connection, ids: Sequence[int], entries: Sequence[tuple[int, int, int, str]]) -> None:
    """The entries an insert left out: an id logged before keeps its first entry; an id whose key another id holds
    takes the next free key of its PROBES (none free: it is not logged, and a warning says so)."""
    log = prediction_log
    inserted: set[tuple[int, int]] = set()
    for at in range(0, len(ids), 500):
        query = sa.select(log.c.batch_id, log.c.batch_row).where(log.c.batch_id.in_(ids[at : at + 500]))
        inserted.update((batch_id, row) for batch_id, row in db.execute(query))
    for key, batch_id, row, rid in sorted(entries, key=lambda entry: entry[1:3]):
        if (batch_id, row) in inserted:
            continue
        taken = {int(k) for k, _, _ in _candidates(db, key, rid, everything=True)}
        if any(found for _, _, found in _candidates(db, key, rid)):
            continue  # logged before
        free = [k for k in range(key, key + PROBES) if k not in taken]
        if not free:
            logger.warning("prediction log: %d keys after request id %r's hash are taken; not logged", PROBES, rid)
            continue
        db.execute(log.insert().values(request_key=free[0], batch_id=batch_id, batch_row=row))


def _candidates(db: Connection, key: int, request_id: str, *, everything: bool = False) -> list[tuple[int, Any, bool]]:
    """The entries under the keys request id `request_id` may have (`everything`: all, else the one that is its),
    each with its row and whether it is that request id's."""
    log, batches = prediction_log, prediction_log_batches
    rows = db.execute(
        sa.select(log, batches)
        .join(batches, batches.c.id == log.c.batch_id)
        .where(log.c.request_key.between(key, key + PROBES - 1))
        .order_by(log.c.request_key)
    ).all()
    found = [(int(r.request_key), r, json.loads(r.request_ids)[r.batch_row] == request_id) for r in rows]
    return found if everything else [f for f in found if f[2]][:1]


def label_logged(db: Connection, joined: Sequence[LabelledPrediction]) -> None:
    """The joined labels, on the entries of their predictions: those under their request id's own key in one query
    (each batch's request ids read once), those moved on by a collision (or not logged) probed one by one."""
    if not joined:
        return
    index_logged(db)
    log, batches = prediction_log, prediction_log_batches
    keys = request_keys([x.prediction.request_id for x in joined])
    at: dict[int, tuple[int, int]] = {}  # key -> its entry's batch and record
    ids_of: dict[int, list[str]] = {}  # batch -> its request ids
    for start in range(0, len(keys), 500):  # bounded IN lists
        chunk = keys[start : start + 500]
        query = sa.select(log.c.request_key, log.c.batch_id, log.c.batch_row, batches.c.request_ids)
        query = query.join(batches, batches.c.id == log.c.batch_id).where(log.c.request_key.in_(chunk))
        for key, batch_id, row, request_ids in db.execute(query):
            at[key] = (batch_id, row)
            if batch_id not in ids_of:
                ids_of[batch_id] = json.loads(request_ids)
    labels = []
    for x, key in zip(joined, keys, strict=True):
        rid = x.prediction.request_id
        batch_id, row = at.get(key, (0, 0))
        if batch_id in ids_of and ids_of[batch_id][row] == rid:
            labels.append((x.truth_label, x.truth_value, key))
        else:
            labels += [(x.truth_label, x.truth_value, k) for k, _, _ in _candidates(db, key, rid)]
    mark = "?" if db.dialect.paramstyle == "qmark" else "%s"
    update = f"UPDATE {log.name} SET truth_label = {mark}, truth_value = {mark} WHERE request_key = {mark}"
    if labels:
        db.exec_driver_sql(update, labels)


def relabel_logged(
    db: Connection, model_name: str, model_version: int, merged: Sequence[tuple[WindowId, WindowId]]
) -> None:
    """Records of slivers point at the window each moved into (in order: a sliver may move on again). Slivers are
    rare and recent: the batches that name one are found by a text match, then rewritten."""
    batches = prediction_log_batches
    for sliver, target in merged:
        old, new = str(sliver), str(target)
        found = db.execute(
            sa.select(batches.c.id, batches.c.records).where(
                batches.c.model_name == model_name,
                batches.c.model_version == model_version,
                batches.c.records.contains(json.dumps(old)),
            )
        ).all()
        for batch_id, records in found:
            event_times, plan_revisions, windows_of = json.loads(records)
            moved = [new if window == old else window for window in windows_of]
            rewritten = json.dumps([event_times, plan_revisions, moved], allow_nan=False)
            db.execute(batches.update().where(batches.c.id == batch_id).values(records=rewritten))


def prune_logged(db: Connection, policy: PredictionLogPolicy, now: float) -> int:
    """Batches past the retention go with their entries, then the oldest entries beyond the row cap (whole batches,
    then the first records of the one the cap falls in); how many entries went."""
    index_logged(db)
    log, batches = prediction_log, prediction_log_batches
    expired = sa.select(batches.c.id).where(batches.c.logged_at < now - policy.retention_s).scalar_subquery()
    gone = db.execute(log.delete().where(log.c.batch_id.in_(expired))).rowcount
    db.execute(batches.delete().where(batches.c.id.in_(expired)))
    excess = int(db.scalar(sa.select(sa.func.coalesce(sa.func.sum(batches.c.entries), 0))) or 0) - policy.max_rows
    if excess <= 0:
        return int(gone)
    oldest = db.execute(sa.select(batches.c.id, batches.c.entries).order_by(batches.c.logged_at, batches.c.id))
    whole: list[int] = []
    for batch_id, entries in oldest:
        if entries > excess:
            first = sa.select(log.c.request_key).where(log.c.batch_id == batch_id).order_by(log.c.batch_row)
            db.execute(log.delete().where(log.c.request_key.in_(first.limit(excess).scalar_subquery())))
            kept = batches.update().where(batches.c.id == batch_id).values(entries=entries - excess)
            db.execute(kept)
            gone += excess
            break
        whole.append(batch_id)
        excess -= entries
        gone += entries
        if not excess:
            break
    oldest.close()
    for at in range(0, len(whole), 500):  # bounded IN lists
        db.execute(log.delete().where(log.c.batch_id.in_(whole[at : at + 500])))
        db.execute(batches.delete().where(batches.c.id.in_(whole[at : at + 500])))
    return int(gone)


def read_logged(db: Connection, request_id: str) -> LoggedPrediction | None:
    """Its entry, else its first record in the batches not indexed yet (a few checkpoints' worth, searched as text
    first: a JSON string's quotes cannot occur unescaped inside another)."""
    found = _candidates(db, request_keys([request_id])[0], request_id)
    if found:
        row = found[0][1]
        truth = row.truth_label if row.truth_label is not None else row.truth_value
        return _logged(row, request_id, int(row.batch_row), truth)
    batches = prediction_log_batches
    needle = json.dumps(request_id)
    for batch in db.execute(sa.select(batches).where(batches.c.entries.is_(None)).order_by(batches.c.id)):
        if needle in batch.request_ids and request_id in (ids := json.loads(batch.request_ids)):
            return _logged(batch, request_id, ids.index(request_id), None)  # labels are joined to indexed entries
    return None


def _logged(batch: Any, request_id: str, row: int, truth: str | float | None) -> LoggedPrediction:
    event_times, plan_revisions, windows = json.loads(batch.records)
    inputs, outputs = record_values(tensors_from_bytes(bytes(batch.tensors)), row)
    return LoggedPrediction(
        request_id=request_id,
        model_name=batch.model_name,
        model_version=int(batch.model_version),
        digest=batch.digest,
        plan_revision=int(plan_revisions[row]),
        event_time=float(event_times[row]),
        window=windows[row],
        inputs=inputs,
        outputs=outputs,
        truth=truth,
        logged_at=float(batch.logged_at),
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
