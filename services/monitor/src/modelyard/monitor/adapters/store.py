"""The monitor's own database (SQLite by default, PostgreSQL in production), SQLAlchemy Core.

One transaction per batch of handled events writes the next offset of each partition they came from, each touched
version's state and the rows the events added to its open windows (one chunk per window); when windows close, their
reports, incident rows and the `IncidentChanged` events (transactional outbox, relayed to Kafka by `OutboxRelay`)
go into the same transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelyard.events.topics import MONITOR_ALERTS
from modelyard.monitor.adapters import snapshots
from modelyard.monitor.adapters.events import incident_event
from modelyard.monitor.adapters.labels import (
    cumulative_performance,
    insert_labels,
    labelled_traffic,
    performance_windows,
)
from modelyard.monitor.adapters.pending import PendingIndex, insert_pending, prune_pending
from modelyard.monitor.adapters.prediction_log import (
    incidents_open_at,
    insert_logged,
    label_logged,
    prune_logged,
    read_logged,
    relabel_logged,
    window_of,
)
from modelyard.monitor.adapters.rows import (
    columns_from_bytes,
    columns_to_bytes,
    incident_views,
    report_from_json,
    report_to_json,
)
from modelyard.monitor.adapters.schema import (
    chunks,
    incidents,
    labels,
    outbox,
    profiles,
    slot_counts,
    stream_positions,
    versions,
    windows,
)
from modelyard.monitor.domain.evaluation import WindowReport
from modelyard.monitor.domain.incidents import Change, IncidentChange
from modelyard.monitor.domain.performance import LabelledPrediction, PendingPrediction
from modelyard.monitor.domain.policy import MonitorPolicy
from modelyard.monitor.domain.ports import Checkpoint, Partition
from modelyard.monitor.domain.prediction_log import DEFAULT_PREDICTION_LOG, PredictionLogPolicy, PredictionTrace
from modelyard.monitor.domain.profile import ReferenceProfile
from modelyard.monitor.domain.snapshot import Snapshot, SnapshotRequest
from modelyard.monitor.domain.state import VersionState
from modelyard.monitor.domain.views import IncidentView, PerformanceWindow, SnapshotView, VersionStatus, json_safe
from modelyard.monitor.domain.windows import Columns, WindowId
from modelyard.sql import migrations
from modelyard.sql.engine import transaction
from modelyard.sql.outbox import enqueue

# Expired predictions, labels and log entries, and those over their caps, are deleted every this many checkpoints.
HOUSEKEEPING_EVERY = 100

MIGRATIONS = "modelyard.monitor.adapters:migrations"


class SqlMonitorStore:
    def __init__(
        self, engine: Engine, policy: MonitorPolicy, prediction_log: PredictionLogPolicy = DEFAULT_PREDICTION_LOG
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.prediction_log = prediction_log
        self.outbox = outbox
        self._checkpoints = 0
        self._pending = PendingIndex()

    def migrate(self) -> None:
        """Bring the database to the latest schema; safe on every start. A database made before the monitor used
        migrations (by `create_all`, exactly revision 0001's schema) is first recorded as being at 0001."""
        migrations.stamp_unversioned(self.engine, MIGRATIONS, "0001", existing_table="seen_events")
        migrations.upgrade(self.engine, MIGRATIONS)

    # Profiles.

    def active_profile(self, model_name: str, model_version: int) -> ReferenceProfile | None:
        with transaction(self.engine, write=False) as db:
            data = db.scalar(
                sa.select(profiles.c.data).where(
                    profiles.c.model_name == model_name,
                    profiles.c.model_version == model_version,
                    profiles.c.active,
                )
            )
        return None if data is None else ReferenceProfile.from_bytes(bytes(data))

    def save_profile(self, profile: ReferenceProfile) -> None:
        with transaction(self.engine, write=True) as db:
            same_version = (profiles.c.model_name == profile.model_name) & (
                profiles.c.model_version == profile.model_version
            )
            db.execute(profiles.update().where(same_version).values(active=False))
            if db.scalar(sa.select(profiles.c.id).where(profiles.c.id == profile.id)) is None:
                db.execute(
                    profiles.insert().values(
                        id=profile.id,
                        model_name=profile.model_name,
                        model_version=profile.model_version,
                        active=True,
                        created_at=time.time(),
                        data=profile.to_bytes(),
                    )
                )
            else:
                db.execute(profiles.update().where(profiles.c.id == profile.id).values(active=True))

    # Window state.

    def load_state(self, model_name: str, model_version: int) -> VersionState | None:
        with transaction(self.engine, write=False) as db:
            text = db.scalar(
                sa.select(versions.c.state).where(
                    versions.c.model_name == model_name, versions.c.model_version == model_version
                )
            )
            if text is None:
                return None
            rows = db.execute(
                sa.select(chunks.c.slot, chunks.c.part, chunks.c.data)
                .where(chunks.c.model_name == model_name, chunks.c.model_version == model_version)
                .order_by(chunks.c.id)
            ).all()
        restored = [(int(r.slot), int(r.part), columns_from_bytes(bytes(r.data))) for r in rows]
        return VersionState.from_json(model_name, model_version, text, restored, self.policy)

    def positions(self) -> dict[Partition, int]:
        with transaction(self.engine, write=False) as db:
            rows = db.execute(sa.select(stream_positions)).all()
        return {(r.topic, int(r.partition)): int(r.next_offset) for r in rows}

    def checkpoint(
        self,
        positions: Mapping[Partition, int],
        checkpoints: Sequence[Checkpoint],
        config_hash: str,
        labels: Sequence[LabelledPrediction] = (),
    ) -> None:
        with transaction(self.engine, write=True) as db:
            for (topic, partition), offset in positions.items():
                where = (stream_positions.c.topic == topic) & (stream_positions.c.partition == partition)
                if db.execute(stream_positions.update().where(where).values(next_offset=offset)).rowcount == 0:
                    db.execute(stream_positions.insert().values(topic=topic, partition=partition, next_offset=offset))
            self._pending.take(db, labels)
            insert_labels(db, labels, self.policy)
            label_logged(db, labels)
            for cp in checkpoints:
                self._write(db, cp, config_hash)
            self._checkpoints += 1
            if self._checkpoints % HOUSEKEEPING_EVERY == 0:
                self._housekeeping(db)

    def pending_predictions(self, request_ids: Sequence[str]) -> dict[str, PendingPrediction]:
        with transaction(self.engine, write=False) as db:
            return self._pending.find(db, request_ids)

    def _housekeeping(self, db: Connection) -> None:
        """Expired predictions and labels, and the oldest predictions over the cap, go."""
        now = time.time()
        prune_logged(db, self.prediction_log, now)
        horizon = now - self.policy.performance.label_ttl_s
        prune_pending(db, horizon, self.policy.performance.max_pending)
        db.execute(labels.delete().where(labels.c.stored_at < horizon))

    def _write(self, db: Connection, cp: Checkpoint, config_hash: str) -> None:
        state = cp.state
        name, version = state.model_name, state.model_version
        values = {"reference_id": cp.profile.id, "state": state.to_json()}
        updated = db.execute(
            versions.update().where(versions.c.model_name == name, versions.c.model_version == version).values(**values)
        )
        if updated.rowcount == 0:
            db.execute(versions.insert().values(model_name=name, model_version=version, **values))
        # A window that took slivers is written anew as one chunk (its rows in memory order, so a restart restores
        # them in that order); the slivers' chunks go, as the closed windows' do.
        open_now = {w.id: w for w in state.assembler.open.values()}
        rewritten = {target: open_now[target] for _, target in cp.merged if target in open_now}
        gone = set(cp.closed) | {sliver for sliver, _ in cp.merged} | set(rewritten)
        by_window: dict[WindowId, list[Columns]] = {w: [window.data()] for w, window in rewritten.items()}
        for w, c in cp.appended:
            if w not in gone:
                by_window.setdefault(w, []).append(c)
        for w in gone:
            db.execute(
                chunks.delete().where(
                    chunks.c.model_name == name,
                    chunks.c.model_version == version,
                    chunks.c.slot == w.slot,
                    chunks.c.part == w.part,
                )
            )
        kept = [
            {"model_name": name, "model_version": version, "slot": w.slot, "part": w.part, "data": columns_to_bytes(c)}
            for w, parts in by_window.items()
            for c in [Columns.concat(parts)]
        ]
        if kept:
            db.execute(chunks.insert(), kept)
        for report in cp.reports:
            db.execute(
                windows.insert().values(
                    model_name=name,
                    model_version=version,
                    window_id=report.window,
                    reference_id=cp.profile.id,
                    tested=report.tested,
                    report=report_to_json(report),
                )
            )
        for change in cp.changes:
            self._write_incident(db, change, cp, config_hash)
        insert_pending(db, cp.pending, time.time())
        insert_logged(db, cp.logged, time.time())
        relabel_logged(db, name, version, cp.merged)  # after this checkpoint's own entries
        for slot, count in cp.slot_counts.items():
            where = (slot_counts.c.model_name == name) & (slot_counts.c.model_version == version)
            where &= slot_counts.c.slot == slot
            added = slot_counts.update().where(where).values(predictions=slot_counts.c.predictions + count)
            if db.execute(added).rowcount == 0:
                db.execute(
                    slot_counts.insert().values(model_name=name, model_version=version, slot=slot, predictions=count)
                )

    def _write_incident(self, db: Connection, change: IncidentChange, cp: Checkpoint, config_hash: str) -> None:
        evidence = json.dumps(json_safe(change.evidence))
        now = time.time()
        if change.change is Change.OPENED:
            key = change.key
            db.execute(
                incidents.insert().values(
                    incident_id=change.incident_id,
                    model_name=key.model_name,
                    model_version=key.model_version,
                    signal=key.signal.value,
                    feature=key.feature,
                    severity=int(change.severity),
                    open=True,
                    opened_at=now,
                    evidence=evidence,
                    reference_id=cp.profile.id,
                    config_hash=config_hash,
                )
            )
        else:
            resolved = change.change is Change.RESOLVED
            values: dict[str, Any] = {"severity": int(change.severity), "open": not resolved}
            if resolved:
                values["resolved_at"] = now
            else:
                values["evidence"] = evidence
            db.execute(incidents.update().where(incidents.c.incident_id == change.incident_id).values(**values))
        event = incident_event(change, cp.state.digest, cp.profile.id, config_hash, cp.window_traces.get(change.window))
        enqueue(db, outbox, MONITOR_ALERTS, event)

    # Queries.

    def statuses(self, model_name: str = "") -> list[VersionStatus]:
        with transaction(self.engine, write=False) as db:
            query = sa.select(versions)
            if model_name:
                query = query.where(versions.c.model_name == model_name)
            rows = db.execute(query.order_by(versions.c.model_name, versions.c.model_version)).all()
            result = []
            for row in rows:
                state = json.loads(row.state)
                open_count = db.scalar(
                    sa.select(sa.func.count()).where(
                        incidents.c.model_name == row.model_name,
                        incidents.c.model_version == row.model_version,
                        incidents.c.open,
                    )
                )
                last = self._windows(db, row.model_name, row.model_version, limit=1, tested_only=True)
                realised, coverage = cumulative_performance(db, self.policy, row.model_name, int(row.model_version))
                result.append(
                    VersionStatus(
                        model_name=row.model_name,
                        model_version=int(row.model_version),
                        reference_id=row.reference_id,
                        records_seen=int(state["records_seen"]),
                        late_records=int(state["late_records"]),
                        windows_closed=int(state["windows_closed"]),
                        open_incidents=int(open_count or 0),
                        last_window=last[0] if last else None,
                        performance=realised,
                        label_coverage=coverage,
                    )
                )
        return result

    def performance_windows(self, model_name: str, model_version: int, limit: int = 100) -> list[PerformanceWindow]:
        with transaction(self.engine, write=False) as db:
            return performance_windows(db, self.policy, model_name, model_version, limit)

    def window_reports(self, model_name: str, model_version: int, limit: int = 100) -> list[WindowReport]:
        with transaction(self.engine, write=False) as db:
            return self._windows(db, model_name, model_version, limit=limit, tested_only=False)

    def _windows(
        self, db: Connection, model_name: str, model_version: int, *, limit: int, tested_only: bool
    ) -> list[WindowReport]:
        query = sa.select(windows.c.report).where(
            windows.c.model_name == model_name, windows.c.model_version == model_version
        )
        if tested_only:
            query = query.where(windows.c.tested)
        rows = db.execute(query.order_by(windows.c.id.desc()).limit(limit)).scalars()
        return [report_from_json(text) for text in rows]

    def incident_views(self, model_name: str = "", *, open_only: bool = False, limit: int = 100) -> list[IncidentView]:
        with transaction(self.engine, write=False) as db:
            query = sa.select(incidents)
            if model_name:
                query = query.where(incidents.c.model_name == model_name)
            if open_only:
                query = query.where(incidents.c.open)
            return incident_views(db, query.order_by(incidents.c.opened_at.desc()).limit(limit))

    def prediction_trace(self, request_id: str) -> PredictionTrace | None:
        with transaction(self.engine, write=False) as db:
            logged = read_logged(db, request_id)
            if logged is None:
                return None
            report = db.scalar(window_of(logged))
            views = incident_views(db, incidents_open_at(logged))
        width = self.policy.window.max_seconds
        start = int(logged.window.split(".")[0]) * width if logged.window else None
        return PredictionTrace(
            logged,
            start,
            None if start is None else start + width,
            report_from_json(report) if report else None,
            views,
        )

    # Retraining snapshots (adapters/snapshots.py).

    def awaiting_snapshot(self, signals: Sequence[str]) -> list[SnapshotRequest]:
        with transaction(self.engine, write=False) as db:
            return snapshots.awaiting_snapshot(db, signals)

    def labelled_traffic(self, model_name: str, limit: int) -> list[LabelledPrediction]:
        with transaction(self.engine, write=False) as db:
            return labelled_traffic(db, model_name, limit)

    def save_snapshot(self, snapshot: Snapshot, digest: str) -> bool:
        with transaction(self.engine, write=True) as db:
            return snapshots.save_snapshot(db, snapshot, digest)

    def snapshot_views(self, model_name: str, limit: int = 100) -> list[SnapshotView]:
        with transaction(self.engine, write=False) as db:
            return snapshots.snapshot_views(db, model_name, limit)


def set_sqlite_synchronous(engine: Engine, mode: Literal["FULL", "NORMAL"]) -> None:
    """PRAGMA synchronous on every new connection of a SQLite engine (WAL mode is set by the engine factory)."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA synchronous = {mode}")
        cursor.close()
