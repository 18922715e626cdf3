"""The prediction log (issue 16, provenance): what a prediction was, by request id, with its window, its label once
joined and the incidents open at its time; bounded by retention and a row cap, pruned by housekeeping."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from modelyard.contracts.events.v1 import common_pb2, serving_events_pb2
from modelyard.errors import ErrorKind
from modelyard.monitor.adapters import prediction_log as log_adapter
from modelyard.monitor.adapters.metrics import PrometheusMetrics
from modelyard.monitor.adapters.prediction_log import (
    PROBES,
    index_logged,
    insert_logged,
    label_logged,
    prune_logged,
    request_keys,
)
from modelyard.monitor.adapters.schema import incidents, prediction_log, prediction_log_batches
from modelyard.monitor.adapters.store import SqlMonitorStore
from modelyard.monitor.domain.errors import ReferenceNotFound
from modelyard.monitor.domain.performance import LabelledPrediction, PendingPrediction
from modelyard.monitor.domain.policy import MonitorPolicy, WindowPolicy
from modelyard.monitor.domain.ports import ReferenceData
from modelyard.monitor.domain.prediction_log import LoggedBatch, PredictionLogPolicy, PredictionNotFound
from modelyard.monitor.domain.profile import Role
from modelyard.monitor.domain.records import TensorRows
from modelyard.monitor.handlers import Monitor
from modelyard.monitor.profiles import ReferenceProfiles
from modelyard.monitor.testing import consumed, consumed_feedback, prediction_batch
from modelyard.sql.engine import create_engine, transaction

pytestmark = pytest.mark.unit
POLICY = MonitorPolicy(window=WindowPolicy(max_events=3, min_events=1, max_seconds=60.0, allowed_lateness_s=0.0))
T0 = 1_700_000_040.0  # slot 28333334 of 60 s windows


class NoReferences:
    def load(self, model_name: str, model_version: int) -> ReferenceData:
        raise ReferenceNotFound(model_name)

    def close(self) -> None:
        pass


def batch(first: int, n: int, at: float, revision: int = 7) -> serving_events_pb2.PredictionBatch:
    version = common_pb2.ModelVersionRef(model_name="m", version=2, digest="sha256:cafe")
    rows = range(first, first + n)
    return prediction_batch(
        version,
        [f"r{i}" for i in rows],
        [round((at + i) * 1000) * 1_000_000 for i in rows],
        {"x": np.array([[float(i), math.nan] for i in rows]), "city": np.array([["Oslo"]] * n)},
        {"label": np.ones(n)},
        latency_ms=1.0,
        plan_revisions=[revision] * n,
    )


@pytest.fixture
def monitor(tmp_path: Path) -> Monitor:
    store = SqlMonitorStore(create_engine(f"sqlite:///{tmp_path / 'monitor.db'}"), POLICY)
    store.migrate()
    return Monitor(store, ReferenceProfiles(NoReferences()), POLICY, PrometheusMetrics(), reference_wait_s=0.0)


def test_a_prediction_is_logged_with_its_version_window_tensors_and_label(monitor: Monitor) -> None:
    monitor.handle_predictions([consumed(0, batch(0, 4, T0))])  # a window of 3 closes by count, r3 opens the next part
    monitor.handle_feedback([consumed_feedback(0, "r1", "1")])

    found = monitor.prediction_trace("r1")
    p = found.prediction
    assert (p.model_name, p.model_version, p.digest, p.plan_revision) == ("m", 2, "sha256:cafe", 7)
    assert p.event_time == pytest.approx(T0 + 1)
    assert p.inputs["x"][0] == 1.0 and math.isnan(float(p.inputs["x"][1])) and p.inputs["city"] == ["Oslo"]
    assert p.outputs == {"label": [1.0]} and p.truth == "1"
    assert found.window is not None and found.window.window == p.window == "28333334.0"
    assert (found.window_start, found.window_end) == (28333334 * 60.0, 28333335 * 60.0)
    still_open = monitor.prediction_trace("r3")
    assert still_open.prediction.window == "28333334.1" and still_open.window is None
    assert still_open.window_start == found.window_start and still_open.prediction.truth is None


def test_an_unknown_request_id_is_not_found_with_a_clear_message(monitor: Monitor) -> None:
    with pytest.raises(PredictionNotFound, match="no prediction with request id 'nope'") as raised:
        monitor.prediction_trace("nope")
    assert raised.value.kind is ErrorKind.NOT_FOUND


def test_a_retried_request_keeps_its_first_entry(monitor: Monitor) -> None:
    monitor.handle_predictions([consumed(0, batch(0, 1, T0, revision=7))])
    monitor.handle_predictions([consumed(1, batch(0, 1, T0, revision=8))])
    assert monitor.prediction_trace("r0").prediction.plan_revision == 7  # found in the batches not indexed yet
    with transaction(monitor.store.engine, write=True) as db:  # type: ignore[attr-defined]
        index_logged(db)
        assert db.scalar(sa.select(sa.func.count()).select_from(prediction_log)) == 1
        assert db.scalar(sa.select(sa.func.count()).select_from(prediction_log_batches)) == 1  # the retry's went
    assert monitor.prediction_trace("r0").prediction.plan_revision == 7  # by its key


def test_the_incidents_listed_are_those_open_at_the_event_time(monitor: Monitor) -> None:
    monitor.handle_predictions([consumed(0, batch(0, 1, T0))])
    rows = [("before-open", T0 - 10, None), ("resolved-before", T0 - 10, T0 - 5), ("after", T0 + 10, None)]
    with transaction(monitor.store.engine, write=True) as db:  # type: ignore[attr-defined]
        for incident_id, opened, resolved in rows:
            db.execute(
                incidents.insert().values(
                    incident_id=incident_id, model_name="m", model_version=2, signal="data_drift", feature="x",
                    severity=2, open=resolved is None, opened_at=opened, resolved_at=resolved, evidence="[]",
                    reference_id="ref", config_hash="h",
                )
            )  # fmt: skip
    assert [i.incident_id for i in monitor.prediction_trace("r0").incidents] == ["before-open"]


def logged(request_ids: list[str], revision: int = 1) -> LoggedBatch:
    tensors = {(Role.INPUT, "x"): TensorRows(np.arange(len(request_ids), dtype=float), np.ones(len(request_ids), int))}
    n = len(request_ids)
    return LoggedBatch("m", 1, "sha256:ab", tensors, request_ids, [T0 + i for i in range(n)], [revision] * n, [""] * n)


def kept_ids(db: sa.Connection) -> list[str]:
    """The request ids of the entries left, oldest first."""
    query = sa.select(prediction_log.c.batch_row, prediction_log_batches.c.request_ids).join(
        prediction_log_batches, prediction_log_batches.c.id == prediction_log.c.batch_id
    )
    rows = db.execute(query.order_by(prediction_log.c.batch_id, prediction_log.c.batch_row)).all()
    return [json.loads(r.request_ids)[r.batch_row] for r in rows]


def test_pruning_drops_expired_batches_then_the_oldest_entries_over_the_cap(tmp_path: Path) -> None:
    store = SqlMonitorStore(create_engine(f"sqlite:///{tmp_path / 'monitor.db'}"), POLICY)
    store.migrate()
    now = time.time()

    def count(db: sa.Connection, table: sa.Table) -> int | None:
        return db.scalar(sa.select(sa.func.count()).select_from(table))

    with transaction(store.engine, write=True) as db:
        insert_logged(db, [logged(["r0"]), logged(["r1"])], logged_at=now - 8 * 24 * 3600)  # past the 7 days
        for i in range(2, 5):
            insert_logged(db, [logged([f"r{i}"])], logged_at=now - 100 + i)
        insert_logged(db, [logged(["r5", "", "r6", "r7"])], logged_at=now - 50)  # a record without a request id
        gone = prune_logged(db, PredictionLogPolicy(max_rows=4), now)  # the cap falls inside the last batch
        kept, batches = kept_ids(db), count(db, prediction_log_batches)
    assert gone == 2 + 2 and kept == ["r4", "r5", "r6", "r7"] and batches == 2
    assert store.prediction_trace("r5") is not None and store.prediction_trace("r3") is None

    with transaction(store.engine, write=True) as db:
        assert prune_logged(db, PredictionLogPolicy(max_rows=2), now) == 2
        assert kept_ids(db) == ["r6", "r7"] and count(db, prediction_log_batches) == 1
        assert prune_logged(db, PredictionLogPolicy(retention_s=1.0), now + 10) == 2
        assert count(db, prediction_log_batches) == 0 and count(db, prediction_log) == 0


def test_request_keys_are_stable_and_independent_of_the_other_ids() -> None:
    alone = request_keys(["r1"]) + request_keys(["a-much-longer-request-id-é"])
    assert request_keys(["r1", "a-much-longer-request-id-é"]) == alone
    assert alone[0] == 207_629_119_759_068_679  # stored keys: a change of the hash needs a migration
    keys = request_keys([f"req-{i}" for i in range(100_000)])
    assert len(set(keys)) == len(keys) and all(0 <= k < 2**62 for k in keys)


def test_ids_under_one_key_are_told_apart_and_a_retry_keeps_its_first_entry(
    monitor: Monitor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Every id hashes to the same key: the probes, not the hash, keep them apart.
    monkeypatch.setattr(log_adapter, "request_keys", lambda ids: [42] * len(ids))
    ids, ids_ = [f"c{i}" for i in range(PROBES + 1)], ["c0", "c2", "zz"]
    with transaction(monitor.store.engine, write=True) as db:  # type: ignore[attr-defined]
        insert_logged(db, [logged(ids[:3], revision=1)], logged_at=time.time())
        insert_logged(db, [logged(["c1", "c3"], revision=2)], logged_at=time.time())  # c1 again, c3 new
        insert_logged(db, [logged(ids[4:], revision=3)], logged_at=time.time())  # c8 finds no free key
        # labels: c0 holds the key itself, c2 was moved on to another, zz was never logged
        label_logged(db, [LabelledPrediction(PendingPrediction(i, "m", 1, T0, "no", 0.5, None), i, None) for i in ids_])
    found = {i: monitor.store.prediction_trace(i) for i in ids}
    assert [found[i].prediction.plan_revision for i in ids[:-1]] == [1, 1, 1, 2, 3, 3, 3, 3]  # type: ignore[union-attr]
    assert found["c1"].prediction.inputs == {"x": [1.0]}  # its first batch's row  # type: ignore[union-attr]
    assert found["c8"] is None and "not logged" in caplog.text
    assert [found[i].prediction.truth for i in ("c0", "c1", "c2", "c3")] == ["c0", None, "c2", None]  # type: ignore[union-attr]


def test_a_monitor_with_no_log_keeps_nothing(tmp_path: Path) -> None:
    store = SqlMonitorStore(create_engine(f"sqlite:///{tmp_path / 'monitor.db'}"), POLICY)
    store.migrate()
    off = PredictionLogPolicy(max_rows=0)
    monitor = Monitor(store, ReferenceProfiles(NoReferences()), POLICY, PrometheusMetrics(), prediction_log=off)
    monitor.handle_predictions([consumed(0, batch(0, 2, T0))])
    with pytest.raises(PredictionNotFound):
        monitor.prediction_trace("r0")
