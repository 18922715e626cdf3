"""Retraining snapshots in the store: which open incidents still await one, and the snapshot recorded with its
`RetrainingSuggested` event (outbox) in one transaction, once per incident."""

from __future__ import annotations

import json
import time
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelyard.events.topics import MONITOR_ALERTS
from modelyard.monitor.adapters.events import retraining_event
from modelyard.monitor.adapters.schema import incidents, outbox, snapshots
from modelyard.monitor.domain.incidents import Signal
from modelyard.monitor.domain.snapshot import Snapshot, SnapshotRequest
from modelyard.monitor.domain.views import SnapshotView
from modelyard.sql.outbox import enqueue


def awaiting_snapshot(db: Connection, signals: Collection[str]) -> list[SnapshotRequest]:
    """Open incidents of `signals` without a snapshot, oldest first."""
    taken = sa.select(snapshots.c.incident_id).where(snapshots.c.incident_id == incidents.c.incident_id)
    rows = db.execute(
        sa.select(incidents.c.incident_id, incidents.c.model_name, incidents.c.model_version, incidents.c.signal)
        .where(incidents.c.open.is_(True), incidents.c.signal.in_(list(signals)), ~taken.exists())
        .order_by(incidents.c.opened_at)
    ).all()
    return [SnapshotRequest(r.incident_id, r.model_name, int(r.model_version), Signal(r.signal)) for r in rows]


def save_snapshot(db: Connection, snapshot: Snapshot, digest: str) -> bool:
    """Record the snapshot and enqueue its event; False (and nothing written) when the incident has one already."""
    request = snapshot.request
    if db.scalar(sa.select(snapshots.c.incident_id).where(snapshots.c.incident_id == request.incident_id)):
        return False
    db.execute(
        snapshots.insert().values(
            incident_id=request.incident_id,
            model_name=request.model_name,
            model_version=request.model_version,
            digest=digest,
            rows=snapshot.rows,
            label_column=snapshot.label_column,
            windows=json.dumps(snapshot.windows),
            created_at=time.time(),
        )
    )
    enqueue(db, outbox, MONITOR_ALERTS, retraining_event(snapshot, digest))
    return True


def snapshot_views(db: Connection, model_name: str, limit: int) -> list[SnapshotView]:
    """The model's snapshots, newest first."""
    rows = db.execute(
        sa.select(snapshots)
        .where(snapshots.c.model_name == model_name)
        .order_by(snapshots.c.created_at.desc())
        .limit(limit)
    ).all()
    return [
        SnapshotView(
            r.incident_id,
            r.model_name,
            int(r.model_version),
            r.digest,
            int(r.rows),
            r.label_column,
            tuple(json.loads(r.windows)),
            r.created_at,
        )
        for r in rows
    ]
