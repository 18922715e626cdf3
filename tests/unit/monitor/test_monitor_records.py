"""Decoding prediction batches into per-version rows: versions apart, ragged and text tensors, missing values."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.contracts.events.v1 import common_pb2, serving_events_pb2
from modelyard.monitor.domain.profile import Role
from modelyard.monitor.entrypoints.consumer import rows_by_version

pytestmark = pytest.mark.unit


def test_records_are_grouped_by_version_with_ragged_text_and_missing_tensors() -> None:
    batch = serving_events_pb2.PredictionBatch(model_name="m")
    v1, v2 = (common_pb2.ModelVersionRef(model_name="m", version=v) for v in (1, 2))
    first = batch.records.add(request_id="a", version=v1, latency_ms=2.0)
    first.timestamp.FromMilliseconds(1_000)
    first.inputs.add(name="x", values=[1.0, 2.0, 3.0])
    first.inputs.add(name="segment", strings=["red"])
    first.outputs.add(name="label", values=[1.0])
    other = batch.records.add(request_id="b", version=v2)
    other.inputs.add(name="x", values=[4.0])
    last = batch.records.add(request_id="c", version=v1, status_code=13)
    last.inputs.add(name="x", values=[7.0, 8.0])  # narrower than the first: ragged
    last.outputs.add(name="label", values=[0.0])

    one, two = rows_by_version(batch, fallback_time=5.0)

    assert (one.model_version, one.request_ids, one.event_time, one.status) == (1, ["a", "c"], [1.0, 5.0], [0, 13])
    x = one.matrix(Role.INPUT, "x")
    np.testing.assert_array_equal(x.numbers, [[1.0, 2.0, 3.0], [7.0, 8.0, np.nan]])
    assert x.widths.tolist() == [3, 2]
    segment = one.matrix(Role.INPUT, "segment")
    assert segment.label_column(0).tolist() == ["red", ""] and segment.widths.tolist() == [1, 0]
    assert one.matrix(Role.OUTPUT, "label").label_column(0).tolist() == ["1", "0"]  # class codes, not "1.0"
    assert one.matrix(Role.OUTPUT, "absent").numeric_column(0).tolist() == [pytest.approx(np.nan, nan_ok=True)] * 2
    assert (two.model_version, two.request_ids) == (2, ["b"])
    np.testing.assert_array_equal(two.matrix(Role.INPUT, "x").numbers, [[4.0]])
