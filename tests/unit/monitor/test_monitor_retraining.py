"""Retraining snapshots over a real SQLite store and a fake registry: an open performance incident turns the
model's labelled traffic (features, label, prediction, time) into one registered CSV snapshot and one
`RetrainingSuggested` in the outbox; too few labels wait, a registry that is away is met again, the size is
bounded, and with the policy off predictions keep no features at all."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelyard.contracts.events.v1 import monitor_events_pb2
from modelyard.monitor.adapters.metrics import PrometheusMetrics
from modelyard.monitor.adapters.pending import block_from_bytes
from modelyard.monitor.adapters.schema import labels, outbox, pending
from modelyard.monitor.adapters.store import SqlMonitorStore
from modelyard.monitor.domain.errors import ReferenceUnavailable
from modelyard.monitor.domain.policy import MonitorPolicy, RetrainingPolicy, WindowPolicy
from modelyard.monitor.handlers import Monitor, Retraining
from modelyard.monitor.profiles import ReferenceProfiles
from modelyard.monitor.testing import answers, consumed, consumed_feedback
from modelyard.sql.engine import create_engine
from tests.unit.monitor.test_monitor_handlers import FakeReferences, batch, reference

pytestmark = pytest.mark.unit
WINDOW = WindowPolicy(max_events=200, min_events=100, max_seconds=3600.0)
POLICY = MonitorPolicy(
    window=WINDOW, retraining=RetrainingPolicy(signals=("performance",), min_rows=300, max_rows=1000)
)


class FakeDatasets:
    def __init__(self) -> None:
        self.uploads: dict[str, bytes] = {}
        self.away = False

    def register_dataset(self, data: bytes, media_type: str) -> str:
        assert media_type == "text/csv"
        if self.away:
            raise ReferenceUnavailable("registry away")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.uploads[digest] = data
        return digest


def monitor(tmp_path: Path, policy: MonitorPolicy) -> tuple[Monitor, SqlMonitorStore]:
    store = SqlMonitorStore(create_engine(f"sqlite:///{tmp_path / 'monitor.db'}"), policy)
    store.migrate()
    references = FakeReferences()
    references.data[("m", 1)] = reference(0, error_rate=0.1)
    return Monitor(store, ReferenceProfiles(references), policy, PrometheusMetrics()), store


def degrade(monitor: Monitor, windows: int, *, labelled: int = 200) -> None:
    """`windows` x 200 predictions; the first `labelled` of each window get labels, two in five saying it was wrong
    (accuracy 0.9 -> 0.6: a critical performance incident once enough labels are in)."""
    for w in range(windows):
        message = batch("m", w * 200, 200, seed=10 + w)
        monitor.handle_predictions([consumed(w, message)])
        feedback = [
            consumed_feedback(w * 200 + i, request_id, str(int(answer) ^ int(i % 5 < 2)))
            for i, (request_id, answer) in enumerate(answers(message)[:labelled])
        ]
        monitor.handle_feedback(feedback)


def outbox_events(store: SqlMonitorStore) -> list[monitor_events_pb2.RetrainingSuggested]:
    with store.engine.connect() as db:
        rows = db.execute(sa.select(outbox).where(outbox.c.event_type.like("%RetrainingSuggested"))).all()
    return [monitor_events_pb2.RetrainingSuggested.FromString(r.payload) for r in rows]


def test_an_open_performance_incident_registers_one_snapshot_of_the_labelled_traffic(tmp_path: Path) -> None:
    monitor_, store = monitor(tmp_path, POLICY)
    datasets = FakeDatasets()
    retraining = Retraining(store, datasets, POLICY)
    degrade(monitor_, 6)
    (incident,) = store.incident_views("m", open_only=True)

    datasets.away = True  # the registry is away: nothing is recorded, the incident is met again
    with pytest.raises(ReferenceUnavailable):
        retraining.suggest()
    assert store.snapshot_views("m") == [] and outbox_events(store) == []
    datasets.away = False
    assert retraining.suggest() == [incident.incident_id]
    assert retraining.suggest() == []  # one snapshot per incident

    (event,) = outbox_events(store)
    (data,) = datasets.uploads.values()
    assert event.dataset_digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert (event.incident_id, event.version.model_name, event.version.version) == (incident.incident_id, "m", 1)
    assert event.signal == monitor_events_pb2.SIGNAL_PERFORMANCE and event.label_column == "target"
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert event.rows == len(rows) == 1000  # the newest 1000 of 1200 labelled predictions: bounded
    assert (
        list(event.columns)
        == list(rows[0])
        == ["x[0]", "x[1]", "x[2]", "segment", "target", "prediction", "model_version", "event_time"]
    )
    times = [float(r["event_time"]) for r in rows]
    assert times == sorted(times) and times[0] == pytest.approx(1_700_000_000.2)  # oldest first, oldest dropped
    wrong = sum(r["target"] != r["prediction"] for r in rows)
    assert wrong == 400  # the labels as sent: two in five disagree with the prediction
    assert all(r["segment"] and float(r["x[0]"]) == float(r["x[0]"]) for r in rows)  # features kept, no gaps
    assert list(event.windows) == ["1/472222"]  # the window slot the rows fell into (lineage)
    (view,) = store.snapshot_views("m")
    assert (view.digest, view.rows, view.windows) == (event.dataset_digest, 1000, ("1/472222",))


def test_too_few_labels_wait_for_more_while_the_incident_is_open(tmp_path: Path) -> None:
    policy = dataclasses.replace(POLICY, retraining=RetrainingPolicy(signals=("performance",), min_rows=1300))
    monitor_, store = monitor(tmp_path, policy)
    retraining = Retraining(store, FakeDatasets(), policy)
    degrade(monitor_, 6)
    assert store.incident_views("m", open_only=True) and retraining.suggest() == []
    degrade_more = batch("m", 6 * 200, 400, seed=99)
    monitor_.handle_predictions([consumed(6, degrade_more)])
    monitor_.handle_feedback(
        [consumed_feedback(2000 + i, request_id, "1") for i, request_id in enumerate(degrade_more.request_ids)]
    )
    (suggested,) = retraining.suggest()
    assert suggested == store.incident_views("m", open_only=True)[0].incident_id
    assert outbox_events(store)[0].rows == 1600


def test_without_a_retraining_policy_predictions_keep_no_features(tmp_path: Path) -> None:
    plain = MonitorPolicy(window=WINDOW)
    monitor_, store = monitor(tmp_path, plain)
    degrade(monitor_, 2, labelled=100)
    with store.engine.connect() as db:
        blocks = [block_from_bytes("m", 1, [], bytes(data)) for data in db.scalars(sa.select(pending.c.data))]
        assert blocks and all(block.features is None for block in blocks)
        assert db.scalar(sa.select(sa.func.count()).select_from(labels)) == 200
        assert db.scalar(sa.select(sa.func.count()).where(labels.c.features.is_not(None))) == 0
    assert store.labelled_traffic("m", 100) == []
