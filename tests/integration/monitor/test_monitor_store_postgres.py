"""The monitor's store on PostgreSQL (must run on CI): checkpoints, de-duplication, the raw ON CONFLICT insert of
pending predictions (driver paramstyle differs from SQLite's), the label join and incidents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.contracts.events.v1 import serving_events_pb2
from modelyard.events import columns
from modelyard.monitor.bootstrap import MonitorParts, build
from modelyard.monitor.domain.incidents import Change
from modelyard.monitor.domain.simulation import Shift
from modelyard.monitor.testing import consumed, consumed_feedback, prediction_events, settings, write_reference
from modelyard.sql.engine import scratch_postgres_database

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def parts(postgres_admin_url: str, tmp_path: Path) -> Iterator[MonitorParts]:
    with scratch_postgres_database(postgres_admin_url, prefix="monitor_test") as url:
        config = settings("127.0.0.1:1", tmp_path).model_copy(
            update={"database_url": url.render_as_string(hide_password=False)}
        )
        write_reference(config.resolved_reference_dir, "credit", 1)
        built = build(config)
        try:
            yield built
        finally:
            built.engine.dispose()


def test_windows_incidents_and_labels_on_postgresql(parts: MonitorParts) -> None:
    monitor, store = parts.monitor, parts.store
    events = prediction_events("credit", 1, 1000, seed=7, shift=Shift(numeric_features=(3,), mean_sd=0.75))
    changes = []
    batches = [e.payload for e in events if isinstance(e.payload, serving_events_pb2.PredictionBatch)]
    changes += monitor.handle_predictions([consumed(i, b) for i, b in enumerate(batches[:6])])
    changes += monitor.handle_predictions([consumed(i, b) for i, b in enumerate(batches) if i >= 4])  # 2 again
    (status,) = store.statuses("credit")
    assert (status.records_seen, status.windows_closed) == (1000, 2)
    # One data drift incident about the model, naming the shifted feature.
    opened = [(c.change, c.key.feature, [e.feature for e in c.evidence]) for c in changes]
    assert opened == [(Change.OPENED, "", ["x[3]"])]
    batch = events[0].payload
    assert isinstance(batch, serving_events_pb2.PredictionBatch)
    assert monitor.handle_feedback([consumed_feedback(0, batch.request_ids[0], "1")]) == 1
    assert store.statuses("credit")[0].label_coverage == pytest.approx(1 / 1000)
    assert store.incident_views("credit", open_only=True)[0].evidence[0].statistic == "ks"
    # The prediction log (issue 16): the entry, its tensors from its batch's block, the joined label.
    traced = monitor.prediction_trace(batch.request_ids[0])
    assert traced.prediction.truth == "1" and traced.prediction.window == traced.window.window  # type: ignore[union-attr]
    first = columns.read_batch(batch).inputs[0]
    assert traced.prediction.inputs["x"] == pytest.approx(first.values[: first.counts[0]].tolist())
