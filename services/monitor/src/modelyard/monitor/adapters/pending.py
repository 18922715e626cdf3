"""Predictions waiting for their labels, in the store: one block per event of a version (`pending_batches`), written
with the checkpoint that windowed them, so the prediction path pays one row per batch rather than one per
prediction. A label finds its prediction through an index in memory (request id -> block and row), built from the
blocks' request ids and brought up to date on every lookup by the list of block ids (blocks written by any instance
are added, blocks gone are dropped); which rows were labelled lives in the block's row (`taken`, a bit each), read
and written with the join, so the index itself never goes stale.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelyard.monitor.adapters.schema import pending
from modelyard.monitor.domain.performance import LabelledPrediction, PendingBatch, PendingPrediction

_HEADER = struct.Struct("<I")  # the block's header length
_ROW_BITS = 32  # an index entry is block id << _ROW_BITS | row
_ROW_MASK = (1 << _ROW_BITS) - 1


def block_to_bytes(batch: PendingBatch) -> bytes:
    """A JSON header (predicted classes, features) then event times, scores and values as little-endian float64. No
    pickled objects: the store is not trusted to run code."""
    header = json.dumps({"label": batch.label, "features": batch.features}).encode()
    numbers = np.concatenate([batch.event_time, batch.score, batch.value]).astype("<f8", copy=False)
    return _HEADER.pack(len(header)) + header + numbers.tobytes()


def block_from_bytes(model_name: str, model_version: int, request_ids: list[str], data: bytes) -> PendingBatch:
    (size,) = _HEADER.unpack_from(data)
    header = json.loads(data[_HEADER.size : _HEADER.size + size])
    numbers = np.frombuffer(data, dtype="<f8", offset=_HEADER.size + size).astype(np.float64).reshape(3, -1)
    return PendingBatch(
        model_name, model_version, request_ids, numbers[0], header["label"], numbers[1], numbers[2], header["features"]
    )


def insert_pending(db: Connection, batches: Sequence[PendingBatch], stored_at: float) -> None:
    """Hot path (every batch of predictions): one row per batch."""
    if batches:
        db.execute(
            pending.insert(),
            [
                {
                    "model_name": b.model_name,
                    "model_version": b.model_version,
                    "stored_at": stored_at,
                    "request_ids": json.dumps(b.request_ids),
                    "data": block_to_bytes(b),
                    "taken": None,
                    "waiting": sum(1 for r in b.request_ids if r),
                }
                for b in batches
            ],
        )


def prune_pending(db: Connection, horizon: float, max_pending: int) -> None:
    """Blocks stored before `horizon` go, then the oldest blocks while more than `max_pending` predictions wait."""
    db.execute(pending.delete().where(pending.c.stored_at < horizon))
    rows = db.execute(sa.select(pending.c.id, pending.c.waiting).order_by(pending.c.id.desc())).all()
    waiting = np.cumsum([int(r.waiting) for r in rows])
    over = next((int(r.id) for r, total in zip(rows, waiting.tolist(), strict=True) if total > max_pending), None)
    if over is not None:  # the newest block past the cap, and every older one
        db.execute(pending.delete().where(pending.c.id <= over))


class PendingIndex:
    """Request id -> (block, row) of the predictions waiting in the store; a request id in two blocks (a retried
    inference) names the first. Thread-safe (a lock of its own); the feedback consumer's worker is its one user."""

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}
        self._blocks: dict[int, list[str]] = {}
        self._lock = threading.Lock()

    def find(self, db: Connection, request_ids: Iterable[str]) -> dict[str, PendingPrediction]:
        """The predictions of `request_ids` that still wait for a label."""
        with self._lock:
            return self._find(db, request_ids)

    def _find(self, db: Connection, request_ids: Iterable[str]) -> dict[str, PendingPrediction]:
        self._refresh(db)
        found: dict[int, list[tuple[str, int]]] = {}
        for request_id in request_ids:
            if (entry := self._rows.get(request_id)) is not None:
                found.setdefault(entry >> _ROW_BITS, []).append((request_id, entry & _ROW_MASK))
        result: dict[str, PendingPrediction] = {}
        if not found:
            return result
        blocks = db.execute(
            sa.select(
                pending.c.id, pending.c.model_name, pending.c.model_version, pending.c.data, pending.c.taken
            ).where(pending.c.id.in_(list(found)))
        ).all()
        for block in blocks:
            wanted = found[int(block.id)]
            taken = _taken(block.taken, max(row for _, row in wanted) + 1)
            rows = [row for _, row in wanted if not taken[row]]
            if rows:
                ids = self._blocks[int(block.id)]
                batch = block_from_bytes(block.model_name, int(block.model_version), ids, bytes(block.data))
                result.update((p.request_id, p) for p in batch.predictions(rows))
        return result

    def take(self, db: Connection, joined: Sequence[LabelledPrediction]) -> None:
        """The joined predictions stop waiting: one update per block they came from (a block with none left goes)."""
        rows: dict[int, list[int]] = {}
        with self._lock:
            for x in joined:
                entry = self._rows[x.prediction.request_id]
                rows.setdefault(entry >> _ROW_BITS, []).append(entry & _ROW_MASK)
            sizes = {block: len(self._blocks[block]) for block in rows}
        blocks = db.execute(
            sa.select(pending.c.id, pending.c.taken, pending.c.waiting).where(pending.c.id.in_(list(rows)))
        ).all()
        for block in blocks:
            block_id = int(block.id)
            taken = _taken(block.taken, sizes[block_id])
            taken[rows[block_id]] = True
            waiting = int(block.waiting) - len(rows[block_id])
            where = pending.c.id == block_id
            if waiting <= 0:
                db.execute(pending.delete().where(where))
            else:
                db.execute(pending.update().where(where).values(taken=np.packbits(taken).tobytes(), waiting=waiting))

    def _refresh(self, db: Connection) -> None:
        """Add the blocks written since (by any instance, in any order of commit), drop those gone (labelled in
        full, expired or over the cap)."""
        stored = set(db.scalars(sa.select(pending.c.id)))
        for block_id in [b for b in self._blocks if b not in stored]:
            for request_id in self._blocks.pop(block_id):
                if self._rows.get(request_id, -1) >> _ROW_BITS == block_id:
                    del self._rows[request_id]
        new = sorted(stored.difference(self._blocks))
        for start in range(0, len(new), 500):
            query = sa.select(pending.c.id, pending.c.request_ids).where(pending.c.id.in_(new[start : start + 500]))
            for block_id, text in sorted(db.execute(query).all()):
                self._add(int(block_id), json.loads(text))

    def _add(self, block_id: int, request_ids: list[str]) -> None:
        self._blocks[block_id] = request_ids
        rows, base = self._rows, block_id << _ROW_BITS
        for row, request_id in enumerate(request_ids):
            if request_id and rows.get(request_id, base | row) >= base | row:  # the first block and row keep it
                rows[request_id] = base | row


def _taken(stored: bytes | None, rows: int) -> npt.NDArray[np.bool_]:
    if stored is None:
        return np.zeros(rows, dtype=bool)
    bits = np.unpackbits(np.frombuffer(stored, dtype=np.uint8)).astype(bool)
    return np.pad(bits, (0, max(0, rows - bits.size)))
