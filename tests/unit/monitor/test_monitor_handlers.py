"""The monitor's use cases over a real SQLite store and a fake reference source: exactly-once windowing,
the delayed-label join and its metrics, the performance detector and re-baselining."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from fastapi import FastAPI
from sklearn.metrics import roc_auc_score

from modelyard.contracts.events.v1 import common_pb2, serving_events_pb2
from modelyard.monitor.adapters.metrics import PrometheusMetrics
from modelyard.monitor.adapters.store import SqlMonitorStore
from modelyard.monitor.domain.errors import ReferenceNotFound, ReferenceUnavailable
from modelyard.monitor.domain.incidents import Severity, Signal
from modelyard.monitor.domain.metrics import roc_auc
from modelyard.monitor.domain.policy import MonitorPolicy, WindowPolicy
from modelyard.monitor.domain.ports import ReferenceData
from modelyard.monitor.domain.simulation import Shift, TabularGenerator
from modelyard.monitor.entrypoints import dashboard
from modelyard.monitor.handlers import Monitor
from modelyard.monitor.profiles import ReferenceProfiles
from modelyard.monitor.testing import answers, consumed, consumed_feedback, prediction_batch
from modelyard.sql.engine import create_engine

pytestmark = pytest.mark.unit
GENERATOR = TabularGenerator(n_numeric=3)
POLICY = MonitorPolicy(window=WindowPolicy(max_events=200, min_events=100, max_seconds=3600.0))


class FakeReferences:
    def __init__(self) -> None:
        self.data: dict[tuple[str, int], Mapping[str, npt.NDArray[np.generic]]] = {}
        self.unavailable = False

    def load(self, model_name: str, model_version: int) -> ReferenceData:
        if self.unavailable:
            raise ReferenceUnavailable("registry away")
        if (model_name, model_version) not in self.data:
            raise ReferenceNotFound(model_name)
        return ReferenceData(self.data[(model_name, model_version)], source="fake")

    def close(self) -> None:
        pass


def reference(seed: int, error_rate: float = 0.1) -> dict[str, npt.NDArray[np.generic]]:
    rng = np.random.default_rng(seed)
    columns = GENERATOR.columns(rng, 4000)
    predicted = (columns.pop("output:score") > 0.5).astype(np.float64)  # type: ignore[operator]
    flip = rng.random(predicted.size) < error_rate
    return columns | {"output:label": predicted, "truth:label": np.where(flip, 1 - predicted, predicted)}


def batch(model: str, start: int, n: int, seed: int, shift: Shift | None = None) -> serving_events_pb2.PredictionBatch:
    columns = GENERATOR.columns(np.random.default_rng(seed), n, shift or Shift())
    score = np.asarray(columns["output:score"], dtype=np.float64)
    return prediction_batch(
        common_pb2.ModelVersionRef(model_name=model, version=1, digest="sha256:ab"),
        [f"{model}-{start + i}" for i in range(n)],
        1_700_000_000_000_000_000 + (start + np.arange(n)) * 1_000_000,
        {
            "x": np.stack([np.asarray(columns[f"x[{j}]"], dtype=np.float64) for j in range(3)], axis=1),
            "segment": np.asarray(columns["segment"]).astype(str)[:, None],
        },
        {"label": (score > 0.5).astype(np.float64)[:, None], "probabilities": np.stack([1 - score, score], axis=1)},
    )


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Monitor, SqlMonitorStore, FakeReferences]:
    store = SqlMonitorStore(create_engine(f"sqlite:///{tmp_path / 'monitor.db'}"), POLICY)
    store.migrate()
    references = FakeReferences()
    return Monitor(store, ReferenceProfiles(references), POLICY, PrometheusMetrics()), store, references


def sqlite_monitor(path: Path) -> tuple[Monitor, SqlMonitorStore]:
    """A monitor on its own SQLite file (or on another's, as a second instance) with model m's reference."""
    store = SqlMonitorStore(create_engine(f"sqlite:///{path}"), POLICY)
    store.migrate()
    references = FakeReferences()
    references.data[("m", 1)] = reference(0)
    return Monitor(store, ReferenceProfiles(references), POLICY, PrometheusMetrics()), store


def test_a_redelivered_event_is_counted_once(parts: tuple[Monitor, SqlMonitorStore, FakeReferences]) -> None:
    monitor, store, references = parts
    references.data[("m", 1)] = reference(0)
    first = consumed(0, batch("m", 0, 150, seed=1))
    monitor.handle_predictions([first])
    monitor.handle_predictions([first])
    monitor.handle_predictions([consumed(1, batch("m", 150, 150, seed=2))])
    (status,) = store.statuses("m")
    assert (status.records_seen, status.windows_closed) == (300, 1)
    # A fresh monitor on the same store resumes the open window from its checkpointed chunks, and reading from
    # where the store says: a redelivered event in a batch is skipped, the rest of the batch counts.
    restarted = Monitor(store, ReferenceProfiles(references), POLICY, PrometheusMetrics())
    assert restarted.resume_positions([(first.position.topic, 0), ("other", 0)]) == {(first.position.topic, 0): 2}
    restarted.handle_predictions([consumed(1, batch("m", 150, 150, seed=2)), consumed(2, batch("m", 300, 100, seed=3))])
    (status,) = store.statuses("m")
    assert (status.records_seen, status.windows_closed) == (400, 2)
    assert [r.n for r in store.window_reports("m", 1)] == [200, 200]


def test_a_batch_of_events_windows_as_the_events_one_by_one(
    parts: tuple[Monitor, SqlMonitorStore, FakeReferences], tmp_path: Path
) -> None:
    monitor, store, references = parts
    references.data[("m", 1)] = reference(0)
    events = [consumed(i, batch("m", i * 90, 90, seed=i, shift=Shift((0, 1, 2), mean_sd=0.8))) for i in range(7)]
    one_by_one = SqlMonitorStore(create_engine(f"sqlite:///{tmp_path / 'other.db'}"), POLICY)
    one_by_one.migrate()
    alone = Monitor(one_by_one, ReferenceProfiles(references), POLICY, PrometheusMetrics())
    changes = monitor.handle_predictions(events)
    assert [c.incident_id for e in events for c in alone.handle_predictions([e])] == [c.incident_id for c in changes]
    assert changes, "the shift opens incidents"
    for s in (store, one_by_one):
        state = s.load_state("m", 1)
        assert state is not None and state.records_seen == 630 and state.windows_closed == 3
        assert [w.count for w in state.assembler.open.values()] == [30]
    assert [r.features for r in store.window_reports("m", 1)] == [r.features for r in one_by_one.window_reports("m", 1)]


def test_labels_join_predictions_and_give_realised_metrics(
    parts: tuple[Monitor, SqlMonitorStore, FakeReferences],
) -> None:
    monitor, store, references = parts
    references.data[("m", 1)] = reference(0)
    message = batch("m", 0, 150, seed=4)
    monitor.handle_predictions([consumed(0, message)])
    truth = {request_id: str(int(label)) for request_id, label in answers(message)[:100]}
    truth["m-0"] = "0" if truth["m-0"] == "1" else "1"  # one wrong prediction
    labels = [consumed_feedback(i, request_id, label) for i, (request_id, label) in enumerate(truth.items())]
    assert monitor.handle_feedback(labels[:60]) == 60
    assert monitor.handle_feedback(labels[50:]) == 40  # redelivered labels are not joined twice
    assert monitor.handle_feedback([consumed_feedback(100, "m-0", "1")]) == 0  # nor is a second label
    assert monitor.handle_feedback([consumed_feedback(101, "no-such-request", "1")]) == 0
    (status,) = store.statuses("m")
    assert status.performance["accuracy"] == pytest.approx(0.99)
    assert status.label_coverage == pytest.approx(100 / 150)
    scores = np.frombuffer(message.outputs[1].data, "<f8").reshape(-1, 2)[:100, 1]
    positive = np.array([truth[request_id] == "1" for request_id in message.request_ids[:100]])
    assert status.performance["roc_auc"] == pytest.approx(roc_auc_score(positive, scores))


def test_roc_auc_counts_ties_half() -> None:
    scores = np.array([0.1, 0.4, 0.4, 0.8, 0.8, 0.9])
    positive = np.array([False, True, False, True, False, True])
    assert roc_auc(scores, positive) == pytest.approx(roc_auc_score(positive, scores))


def test_labels_worse_than_the_reference_open_a_critical_performance_incident(
    parts: tuple[Monitor, SqlMonitorStore, FakeReferences],
) -> None:
    monitor, store, references = parts
    references.data[("m", 1)] = reference(0, error_rate=0.1)
    changes = []
    for w in range(6):
        message = batch("m", w * 200, 200, seed=10 + w)
        changes += monitor.handle_predictions([consumed(w, message)])
        # Two in five labels say the prediction was wrong: accuracy falls from 0.9 to 0.6.
        labels = [
            consumed_feedback(w * 200 + i, request_id, str(int(label) ^ int(i % 5 < 2)))
            for i, (request_id, label) in enumerate(answers(message))
        ]
        assert monitor.handle_feedback(labels) == 200
    (state,) = [store.load_state("m", 1)]
    # Label windows of 500, the first closed early where the CUSUM crossed h: 1200 = (< 500) + 500 + the rest.
    assert state is not None and state.label_windows == 2 and 200 < state.labels.n < 500
    (incident,) = store.incident_views("m", open_only=True)
    assert (incident.signal, incident.feature, incident.severity) == (Signal.PERFORMANCE, "accuracy", Severity.CRITICAL)
    assert incident.evidence[0].effect_size == pytest.approx(0.3, abs=0.05)
    history = monitor.performance_windows("m", 1)
    assert history.baseline["accuracy"].value == pytest.approx(0.9, abs=0.02)
    (slot,) = history.windows  # all predictions fall in one slot of an hour
    assert (slot.predictions, slot.labelled) == (1200, 1200) and slot.metrics["accuracy"] == pytest.approx(0.6)


def test_rebaseline_makes_a_new_reference_and_drops_open_windows(
    parts: tuple[Monitor, SqlMonitorStore, FakeReferences],
) -> None:
    monitor, store, references = parts
    references.data[("m", 1)] = reference(0)
    monitor.handle_predictions([consumed(0, batch("m", 0, 150, seed=5))])
    old = store.active_profile("m", 1)
    references.data[("m", 1)] = reference(1)
    new = monitor.rebaseline("m", 1)
    assert old is not None and new.id != old.id
    active = store.active_profile("m", 1)
    assert active is not None and active.id == new.id
    state = store.load_state("m", 1)
    assert state is not None and state.assembler.open == {} and state.records_seen == 150
    with pytest.raises(ReferenceNotFound):
        monitor.rebaseline("other", 1)


async def test_dashboard_shows_drift_over_time_and_the_incident(
    parts: tuple[Monitor, SqlMonitorStore, FakeReferences],
) -> None:
    monitor, _, references = parts
    references.data[("m", 1)] = reference(0)
    shift = Shift(numeric_features=(2,), mean_sd=1.0)
    for w in range(3):
        monitor.handle_predictions([consumed(w, batch("m", w * 200, 200, seed=30 + w, shift=shift))])
    app = FastAPI()
    app.include_router(dashboard.router(monitor))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://monitor") as client:
        page = await client.get("/dashboard/m/1")
        assert page.status_code == 200
        # One model-level data drift incident, which names the shifted feature.
        row = '<tr class="incident" data-feature="" data-signal="data_drift" data-features="[&quot;x[2]&quot;]">'
        assert row in page.text and "model: x[2]" in page.text
        assert page.text.count("<svg") >= 4 and 'class="breach"' in page.text
        assert "label coverage 0.0%" in page.text
        assert 'id="performance-baseline">baseline accuracy 0.899 ± 0.004 (reference)' in page.text
        assert "2023-11-14 22:00:00 UTC" in page.text  # charts run on wall time, not window ids
        assert 'href="/dashboard/m/1"' in (await client.get("/dashboard")).text
        assert (await client.get("/dashboard/m/9")).status_code == 404
        # Without outputs and truth in the reference, the page says performance is not tested.
        references.data[("plain", 1)] = GENERATOR.columns(np.random.default_rng(0), 1000)
        monitor.handle_predictions([consumed(9, batch("plain", 0, 10, seed=1))])
        assert 'id="performance-off"' in (await client.get("/dashboard/plain/1")).text


def test_an_unavailable_reference_source_is_asked_again_later(
    parts: tuple[Monitor, SqlMonitorStore, FakeReferences],
) -> None:
    monitor, store, references = parts
    references.data[("m", 1)] = reference(0)
    references.unavailable = True
    # Handled (operations only), not failed: a registry that is away must not dead-letter the predictions.
    monitor.handle_predictions([consumed(0, batch("m", 0, 50, seed=1))])
    assert store.active_profile("m", 1) is None
    with pytest.raises(ReferenceUnavailable):
        monitor.rebaseline("m", 1)
    references.unavailable = False
    monitor.profiles.retry_s = 0.0
    monitor.handle_predictions([consumed(1, batch("m", 50, 50, seed=2))])
    profile = store.active_profile("m", 1)
    assert profile is not None and profile.features


class SlowReferences(FakeReferences):
    """A source whose download of model m takes until the test lets it finish."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def load(self, model_name: str, model_version: int) -> ReferenceData:
        if model_name == "m":
            assert self.release.wait(10), "the test never released the download"
        return super().load(model_name, model_version)


def test_a_slow_reference_download_holds_neither_the_lock_nor_the_stream(tmp_path: Path) -> None:
    store = SqlMonitorStore(create_engine(f"sqlite:///{tmp_path / 'monitor.db'}"), POLICY)
    store.migrate()
    references = SlowReferences()
    references.data[("m", 1)] = reference(0)
    references.data[("n", 1)] = reference(0)
    monitor = Monitor(store, ReferenceProfiles(references), POLICY, PrometheusMetrics(), reference_wait_s=0.2)
    try:
        # While m's download is stuck, its batch goes through after the bounded wait, for operations only ...
        monitor.handle_predictions([consumed(0, batch("m", 0, 50, seed=1))])
        assert store.active_profile("m", 1) is None
        # ... and a rebaseline of another version, which needs the lock, is not held up by it.
        rebaseline = threading.Thread(target=monitor.rebaseline, args=("n", 1))
        rebaseline.start()
        rebaseline.join(10)
        assert not rebaseline.is_alive() and store.active_profile("n", 1) is not None
        references.release.set()
        # Once the download is done, the next batch adopts the profile.
        monitor.profiles.wait([("m", 1)], 10)
        monitor.handle_predictions([consumed(1, batch("m", 50, 50, seed=2))])
        profile = store.active_profile("m", 1)
        assert profile is not None and profile.features
    finally:
        references.release.set()
        monitor.profiles.close()


def test_a_version_made_ready_in_the_registry_is_profiled_before_its_first_prediction(
    parts: tuple[Monitor, SqlMonitorStore, FakeReferences],
) -> None:
    monitor, store, references = parts
    references.data[("m", 1)] = reference(0)
    monitor.prefetch("m", 1)
    prefetched = store.active_profile("m", 1)
    assert prefetched is not None and prefetched.features
    references.data.clear()  # the source is not asked again: the first predictions find the profile
    monitor.handle_predictions([consumed(0, batch("m", 0, 50, seed=1))])
    assert [s.records_seen for s in store.statuses("m")] == [50]
    assert (again := store.active_profile("m", 1)) is not None and again.id == prefetched.id
    monitor.prefetch("m", 2)  # no reference: nothing prefetched, nothing raised
    assert store.active_profile("m", 2) is None


def test_a_quiet_stream_is_flushed_by_the_wall_clock(parts: tuple[Monitor, SqlMonitorStore, FakeReferences]) -> None:
    monitor, store, references = parts
    references.data[("m", 1)] = reference(0)
    monitor.handle_predictions([consumed(0, batch("m", 0, 150, seed=1))])  # one open window: 150 < W = 200
    latest = 1_700_000_000.149
    assert monitor.flush_idle(latest + POLICY.window.idle_flush_s - 1) == []
    assert store.window_reports("m", 1) == []
    # Quiet for idle_flush_s: the watermark moves to the wall clock minus the lateness, past the slot's end.
    monitor.flush_idle(latest + 2 * POLICY.window.max_seconds)
    (report,) = store.window_reports("m", 1)
    assert (report.n, report.closed_by, report.tested) == (150, "watermark", True)
    # Checkpointed: a fresh monitor resumes from the moved watermark, so a straggler of that slot is late.
    restarted = Monitor(store, ReferenceProfiles(references), POLICY, PrometheusMetrics())
    restarted.resume_positions([])
    restarted.handle_predictions([consumed(1, batch("m", 150, 10, seed=2))])
    state = store.load_state("m", 1)
    assert state is not None and state.late_records == 10 and state.windows_closed == 1


def test_the_idle_flush_covers_a_version_whose_traffic_never_came_back_after_a_restart(
    parts: tuple[Monitor, SqlMonitorStore, FakeReferences],
) -> None:
    monitor, store, references = parts
    references.data[("m", 1)] = reference(0)
    monitor.handle_predictions([consumed(0, batch("m", 0, 150, seed=1))])  # one open window, checkpointed
    restarted = Monitor(store, ReferenceProfiles(references), POLICY, PrometheusMetrics())
    assert restarted.flush_idle(1_700_000_000.149 + POLICY.window.idle_flush_s - 1) == []  # not quiet long enough
    assert store.window_reports("m", 1) == []
    # No prediction of m/1 since the restart: the stored open window is flushed all the same.
    restarted.flush_idle(1_700_000_000.149 + 2 * POLICY.window.max_seconds)
    (report,) = store.window_reports("m", 1)
    assert (report.n, report.closed_by, report.tested) == (150, "watermark", True)
