"""Decoding prediction batches (as serving's encoder writes them) into per-version rows: numpy views of the columns,
ragged and text tensors, missing values; a batch whose columns disagree with its records is a permanent error."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.contracts.events.v1 import serving_events_pb2
from modelyard.kafka.consumer import PermanentError
from modelyard.monitor.domain.profile import Role
from modelyard.monitor.entrypoints.consumer import rows_by_version
from modelyard.serving.adapters.metrics import PrometheusStreamMetrics
from modelyard.serving.adapters.records import RecordEncoder, RecordPolicy
from modelyard.serving.domain.model import VersionRef
from modelyard.serving.domain.stream import Prediction

pytestmark = pytest.mark.unit
V1, V2 = VersionRef("m", 1, "sha256:a"), VersionRef("m", 2, "sha256:b")
ENCODER = RecordEncoder(RecordPolicy(), PrometheusStreamMetrics())  # serving's, as it writes the stream


def predicted(
    request_id: str, ref: VersionRef, inputs: dict[str, np.ndarray], label: int | None, at: int
) -> Prediction:
    outputs = [] if label is None else [np.array([label], np.int64)]
    names = ["label"] * len(outputs)
    return Prediction(request_id, ref, at, inputs, names, outputs, 0.002, 13 if request_id == "c" else 0, "")


def test_serving_batches_decode_to_rows_per_version_with_ragged_text_and_missing_tensors() -> None:
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    predictions = [
        predicted("a", V1, {"x": x, "segment": np.array([["red"]], np.object_)}, 1, 1_000_000_000),
        predicted("b", V2, {"x": np.array([[4.0]], np.float32)}, None, 0),
        predicted("c", V1, {"x": np.array([[7.0, 8.0]], np.float32)}, 0, 0),  # narrower than "a": ragged
    ]
    first, second = ENCODER.batches(predictions)

    (one,) = rows_by_version(first, fallback_time=5.0)
    assert (one.model_version, one.digest, one.request_ids) == (1, "sha256:a", ["a", "c"])
    assert (one.event_time.tolist(), one.status.tolist(), one.latency_ms.tolist()) == ([1.0, 5.0], [0, 13], [2.0, 2.0])
    matrix = one.matrix(Role.INPUT, "x")
    np.testing.assert_array_equal(matrix.numbers, [[1.0, 2.0, 3.0], [7.0, 8.0, np.nan]])
    assert matrix.widths.tolist() == [3, 2]
    segment = one.matrix(Role.INPUT, "segment")
    assert segment.label_column(0).tolist() == ["red", ""] and segment.widths.tolist() == [1, 0]
    assert one.matrix(Role.OUTPUT, "label").label_column(0).tolist() == ["1", "0"]  # class codes, not "1.0"
    assert one.matrix(Role.OUTPUT, "absent").numeric_column(0).tolist() == [pytest.approx(np.nan, nan_ok=True)] * 2
    (two,) = rows_by_version(second, fallback_time=5.0)
    assert (two.model_version, two.request_ids) == (2, ["b"])
    np.testing.assert_array_equal(two.matrix(Role.INPUT, "x").numbers, [[4.0]])


def test_records_of_one_width_are_a_view_of_the_payload_typed_as_sent() -> None:
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    predictions = [predicted(str(i), V1, {"x": rows[i : i + 1]}, i % 2, 1) for i in range(4)]
    (batch,) = ENCODER.batches(predictions)
    (decoded,) = rows_by_version(batch, fallback_time=0.0)
    matrix = decoded.matrix(Role.INPUT, "x")
    assert matrix.numbers.dtype == np.float32 and not matrix.numbers.flags.owndata  # no copy of the column
    np.testing.assert_array_equal(matrix.numbers, rows)
    assert decoded.matrix(Role.INPUT, "x").numeric_column(2).tolist() == [2.0, 5.0, 8.0, 11.0]


def corrupt(field: str) -> serving_events_pb2.PredictionBatch:
    predictions = [predicted(str(i), V1, {"x": np.ones((1, 2), np.float32)}, 1, 1) for i in range(3)]
    (batch,) = ENCODER.batches(predictions)
    if field == "counts":
        batch.inputs[0].counts = np.array([2, 2, 3], "<i8").tobytes()
    elif field == "datatype":
        batch.inputs[0].datatype = "COMPLEX"
    elif field == "latency_ms":
        batch.latency_ms = batch.latency_ms[:-1]
    else:
        batch = serving_events_pb2.PredictionBatch(model_name="m")  # format version 1 or empty: no request ids
    return batch


@pytest.mark.parametrize("field", ["counts", "datatype", "latency_ms", "request_ids"])
def test_a_batch_whose_columns_disagree_with_its_records_is_a_permanent_error(field: str) -> None:
    with pytest.raises(PermanentError, match=f"undecodable prediction batch: .*{field.split('_')[0]}"):
        rows_by_version(corrupt(field), fallback_time=0.0)
