"""The prediction stream: a bounded buffer that drops and counts, records capped, catch-up after an outage."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from modelyard.contracts.events.v1 import serving_events_pb2 as srv
from modelyard.events.envelope import Event
from modelyard.events.topics import SERVING_PREDICTIONS, Topic
from modelyard.serving.adapters.kafka import PredictionPublisher
from modelyard.serving.domain.model import VersionRef
from modelyard.serving.domain.stream import Prediction, PredictionBuffer, RecordPolicy, to_batches, version_ref_message

pytestmark = pytest.mark.unit

REF = VersionRef("m", 1, "sha256:abc")


def prediction(request_id: str, model: str = "m", inputs: np.ndarray | None = None) -> Prediction:
    x = inputs if inputs is not None else np.ones((1, 3), np.float32)
    ref = VersionRef(model, 1, "sha256:abc")
    return Prediction(request_id, ref, 1_700_000_000_000_000_000, {"x": x}, ["y"], [np.array([1])], 0.002, 0, "")


def test_full_buffer_drops_new_predictions_and_counts_them() -> None:
    dropped: list[str] = []
    buffer = PredictionBuffer(2, dropped.append)
    for i in range(5):
        buffer.add(prediction(str(i)))
    assert [p.request_id for p in buffer.peek(10)] == ["0", "1"]
    assert buffer.dropped == 3 and dropped == ["m", "m", "m"]


def to_record(prediction: Prediction, policy: RecordPolicy) -> srv.PredictionRecord:
    return to_batches([prediction], policy)[prediction.ref.model].records[0]


def test_hand_encoded_records_equal_the_generated_messages() -> None:
    strings = np.array([["a", "\u00e9"]], dtype=np.object_)
    item = Prediction(
        "r-\u00e9", REF, 1_700_000_000_123_456_789, {"x": np.array([[1.5, -2.0]], np.float32), "s": strings},
        ["y"], [np.array([7], np.int64)], 0.0125, 3, "00-abc-def-01",
    )  # fmt: skip
    expected = srv.PredictionRecord(
        request_id="r-\u00e9",
        version=version_ref_message(REF),
        inputs=[
            srv.PredictionTensor(name="x", shape=[1, 2], values=[1.5, -2.0]),
            srv.PredictionTensor(name="s", shape=[1, 2], strings=["a", "\u00e9"]),
        ],
        outputs=[srv.PredictionTensor(name="y", shape=[1], values=[7.0])],
        latency_ms=12.5,
        status_code=3,
        traceparent="00-abc-def-01",
    )
    expected.timestamp.FromNanoseconds(1_700_000_000_123_456_789)
    batches = to_batches([item, item], RecordPolicy())
    assert list(batches) == ["m"] and batches["m"].model_name == "m"
    assert list(batches["m"].records) == [expected, expected]


def test_records_carry_feature_vectors_and_cap_large_tensors() -> None:
    record = to_record(prediction("r"), RecordPolicy())
    assert record.request_id == "r" and record.version.digest == "sha256:abc"
    assert (list(record.inputs[0].shape), list(record.inputs[0].values)) == ([1, 3], [1.0, 1.0, 1.0])
    assert record.latency_ms == pytest.approx(2.0) and record.timestamp.seconds == 1_700_000_000

    large = prediction("r", inputs=np.arange(100, dtype=np.float32))
    kept = to_record(large, RecordPolicy(max_values=10, large_sample_rate=1.0)).inputs[0]
    assert (kept.truncated, len(kept.values), list(kept.shape)) == (True, 10, [100])
    assert not to_record(large, RecordPolicy(max_values=10, large_sample_rate=0.0)).inputs


class FlakyPublisher:
    """Fails while `down`; keeps what it was given otherwise."""

    def __init__(self) -> None:
        self.down = True
        self.sent: list[tuple[str, Event]] = []

    async def publish_many(self, topic: Topic | str, events: Sequence[Event]) -> None:
        if self.down:
            raise ConnectionError("broker away")
        self.sent += [(topic if isinstance(topic, str) else topic.name, e) for e in events]


async def test_publisher_keeps_records_while_the_broker_is_away_and_catches_up() -> None:
    buffer = PredictionBuffer(100)
    broker = FlakyPublisher()
    publisher = PredictionPublisher(buffer, broker, RecordPolicy(), max_records=3)  # type: ignore[arg-type]
    for i in range(5):
        buffer.add(prediction(f"a{i}", model="a" if i % 2 else "b"))

    with pytest.raises(ConnectionError):
        await publisher.flush()
    assert len(buffer) == 5

    broker.down = False
    await publisher.flush()
    assert len(buffer) == 0
    assert {topic for topic, _ in broker.sent} == {SERVING_PREDICTIONS.name}
    batches = [e.payload for _, e in broker.sent]
    assert all(isinstance(b, srv.PredictionBatch) for b in batches)
    ids = [r.request_id for b in batches for r in b.records]  # type: ignore[attr-defined]
    assert sorted(ids) == [f"a{i}" for i in range(5)]
    assert {e.key for _, e in broker.sent} == {"a", "b"}
