"""The prediction stream: a bounded buffer that drops and counts, records and batches capped (by bytes), catch-up
after an outage, and a batch the broker refuses for good dropped rather than retried."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaError, MessageSizeTooLargeError

from modelyard.contracts.events.v1 import serving_events_pb2 as srv
from modelyard.events.envelope import Event
from modelyard.events.topics import SERVING_PREDICTIONS, Topic
from modelyard.serving.adapters.kafka import PredictionPublisher
from modelyard.serving.adapters.records import RecordEncoder, RecordPolicy, version_ref_message
from modelyard.serving.domain.model import VersionRef
from modelyard.serving.domain.stream import Cut, Dropped, Prediction, PredictionBuffer

pytestmark = pytest.mark.unit


class CountingMetrics:
    """The stream's counters, kept in memory."""

    def __init__(self) -> None:
        self.dropped_records: Counter[tuple[str, str]] = Counter()
        self.truncated_records: Counter[tuple[str, str]] = Counter()
        self.failures: Counter[str] = Counter()
        self.pending: Callable[[], float] = lambda: 0.0

    def dropped(self, model: str, reason: str, count: int = 1) -> None:
        self.dropped_records[model, reason] += count

    def truncated(self, model: str, reason: str) -> None:
        self.truncated_records[model, reason] += 1

    def delivery_failed(self, outcome: str) -> None:
        self.failures[outcome] += 1

    def track_pending(self, read: Callable[[], float]) -> None:
        self.pending = read


REF = VersionRef("m", 1, "sha256:abc")


def prediction(request_id: str, model: str = "m", inputs: np.ndarray | None = None) -> Prediction:
    x = inputs if inputs is not None else np.ones((1, 3), np.float32)
    ref = VersionRef(model, 1, "sha256:abc")
    return Prediction(request_id, ref, 1_700_000_000_000_000_000, {"x": x}, ["y"], [np.array([1])], 0.002, 0, "")


def test_full_buffer_drops_new_predictions_and_counts_them() -> None:
    metrics = CountingMetrics()
    buffer = PredictionBuffer(2, metrics)
    for i in range(5):
        buffer.add(prediction(str(i)))
    assert [p.request_id for p in buffer.take(10)] == ["0", "1"]
    assert buffer.dropped == 3 and metrics.dropped_records == {("m", Dropped.BUFFER_FULL): 3}
    assert len(buffer) == 0


def batches_of(predictions: Sequence[Prediction], policy: RecordPolicy | None = None) -> list[srv.PredictionBatch]:
    return RecordEncoder(policy or RecordPolicy(), CountingMetrics()).batches(predictions)


def to_record(prediction: Prediction, policy: RecordPolicy) -> srv.PredictionRecord:
    (batch,) = batches_of([prediction], policy)
    return batch.records[0]


def test_hand_encoded_records_equal_the_generated_messages() -> None:
    strings = np.array([["a", "\u00e9"]], dtype=np.object_)
    item = Prediction(
        "r-\u00e9", REF, 1_700_000_000_123_456_789, {"x": np.array([[1.5, -2.0]], np.float32), "s": strings},
        ["y"], [np.array([7], np.int64)], 0.0125, 3, "00-abc-def-01", 42,
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
        plan_revision=42,
    )
    expected.timestamp.FromNanoseconds(1_700_000_000_123_456_789)
    (batch,) = batches_of([item, item])
    assert batch.model_name == "m" and list(batch.records) == [expected, expected]


def test_records_carry_feature_vectors_and_cap_large_tensors() -> None:
    record = to_record(prediction("r"), RecordPolicy())
    assert record.request_id == "r" and record.version.digest == "sha256:abc"
    assert (list(record.inputs[0].shape), list(record.inputs[0].values)) == ([1, 3], [1.0, 1.0, 1.0])
    assert record.latency_ms == pytest.approx(2.0) and record.timestamp.seconds == 1_700_000_000

    large = prediction("r", inputs=np.arange(100, dtype=np.float32))
    kept = to_record(large, RecordPolicy(max_values=10, large_sample_rate=1.0)).inputs[0]
    assert (kept.truncated, len(kept.values), list(kept.shape)) == (True, 10, [100])
    assert not to_record(large, RecordPolicy(max_values=10, large_sample_rate=0.0)).inputs


def test_batches_are_cut_by_bytes_per_model_in_arrival_order() -> None:
    policy = RecordPolicy(max_record_bytes=1024, max_batch_bytes=2048)
    predictions = [
        prediction(f"{i:03d}", model="a" if i % 3 else "b", inputs=np.arange(16, dtype=np.float32)) for i in range(90)
    ]
    batches = batches_of(predictions, policy)

    assert len(batches) > 2 and all(batch.ByteSize() <= policy.max_batch_bytes for batch in batches)
    for model in ("a", "b"):
        own = [b for b in batches if b.model_name == model]
        ids = [r.request_id for b in own for r in b.records]
        assert ids == [p.request_id for p in predictions if p.ref.model == model]
        for batch, following in itertools.pairwise(own):  # a batch is cut only when the next record does not fit
            next_record = srv.PredictionBatch(records=following.records[:1]).ByteSize()
            assert batch.ByteSize() + next_record > policy.max_batch_bytes


def test_request_ids_over_the_cap_are_cut_on_a_character_boundary_and_counted() -> None:
    metrics = CountingMetrics()
    encoder = RecordEncoder(RecordPolicy(max_request_id_bytes=8), metrics)
    huge, accented, short = "x" * 1_100_000, "ab\u00e9\u00e9\u00e9\u00e9", "12345678"
    batch = encoder.batches([prediction(huge), prediction(accented), prediction(short)])[0]

    assert [r.request_id for r in batch.records] == ["x" * 8, "ab\u00e9\u00e9\u00e9", short]
    assert metrics.truncated_records == {("m", Cut.REQUEST_ID): 2}


def test_records_over_the_cap_lose_their_tensors_or_are_dropped() -> None:
    metrics = CountingMetrics()
    encoder = RecordEncoder(RecordPolicy(max_record_bytes=1024, max_batch_bytes=4096), metrics)
    text = np.array([["y" * 2_000_000, "a", "b"]], dtype=np.object_)  # one value, under max_values, 2 MB
    (batch,) = encoder.batches([prediction("big", inputs=text), prediction("small")])

    big, small = batch.records
    assert (big.request_id, list(big.inputs), list(big.outputs)) == ("big", [], [])
    assert big.latency_ms == pytest.approx(2.0) and big.version.digest == "sha256:abc"
    assert small.inputs[0].values == [1.0, 1.0, 1.0]
    assert metrics.truncated_records == {("m", Cut.TENSORS): 1}

    tiny = RecordEncoder(RecordPolicy(max_record_bytes=16, max_batch_bytes=4096), metrics)
    assert tiny.batches([prediction("r")]) == []
    assert metrics.dropped_records == {("m", Dropped.RECORD_TOO_LARGE): 1}


class FakeBroker:
    """Refuses the batches `refuse` says so; fails every send while `down`; keeps what it took."""

    def __init__(self, refuse: Callable[[srv.PredictionBatch], KafkaError | None] = lambda batch: None) -> None:
        self.down = False
        self.refuse = refuse
        self.sent: list[tuple[str, Event]] = []

    async def deliver(self, topic: Topic | str, events: Sequence[Event]) -> list[KafkaError | None]:
        outcomes: list[KafkaError | None] = []
        for event in events:
            assert isinstance(event.payload, srv.PredictionBatch)
            error = KafkaConnectionError("broker away") if self.down else self.refuse(event.payload)
            if error is None:
                self.sent.append((topic if isinstance(topic, str) else topic.name, event))
            outcomes.append(error)
        return outcomes

    def ids(self) -> list[str]:
        return [r.request_id for _, e in self.sent for r in e.payload.records]  # type: ignore[attr-defined]


def publisher_for(
    buffer: PredictionBuffer, broker: FakeBroker, metrics: CountingMetrics, **options: float
) -> PredictionPublisher:
    encoder = RecordEncoder(RecordPolicy(), metrics)
    return PredictionPublisher(buffer, broker, encoder, metrics, **options)  # type: ignore[arg-type]


async def test_publisher_keeps_records_while_the_broker_is_away_and_catches_up() -> None:
    metrics = CountingMetrics()
    buffer = PredictionBuffer(100, metrics)
    broker = FakeBroker()
    broker.down = True
    publisher = publisher_for(buffer, broker, metrics, max_records=3)
    for i in range(5):
        buffer.add(prediction(f"a{i}", model="a" if i % 2 else "b"))

    with pytest.raises(KafkaConnectionError):
        await publisher.flush()
    assert publisher.waiting == 5 and metrics.pending() == 5
    assert metrics.failures == {"retried": 2}  # one batch per model of the first 3 records

    broker.down = False
    await publisher.flush()
    assert publisher.waiting == 0
    assert {topic for topic, _ in broker.sent} == {SERVING_PREDICTIONS.name}
    assert sorted(broker.ids()) == [f"a{i}" for i in range(5)]  # each once
    assert {e.key for _, e in broker.sent} == {"a", "b"}
    assert not metrics.dropped_records


async def test_a_batch_refused_for_good_is_dropped_and_counted_not_retried() -> None:
    metrics = CountingMetrics()
    buffer = PredictionBuffer(100, metrics)

    def refuse_poison(batch: srv.PredictionBatch) -> KafkaError | None:
        poisoned = any(r.request_id == "poison" for r in batch.records)
        return MessageSizeTooLargeError("too large") if poisoned else None

    broker = FakeBroker(refuse_poison)
    publisher = publisher_for(buffer, broker, metrics, max_records=2)
    for request_id, model in [("poison", "a"), ("b0", "b"), ("a1", "a"), ("b1", "b")]:
        buffer.add(prediction(request_id, model=model))

    await publisher.flush()  # no error: nothing is left to retry

    assert broker.ids() == ["b0", "a1", "b1"]
    assert metrics.dropped_records == {("a", Dropped.REFUSED): 1}
    assert metrics.failures == {Dropped.REFUSED: 1}
    assert publisher.waiting == 0


async def test_the_background_task_retries_transient_failures_with_backoff_and_delivers_once() -> None:
    metrics = CountingMetrics()
    buffer = PredictionBuffer(100, metrics)
    attempts = 0

    def flaky(batch: srv.PredictionBatch) -> KafkaError | None:
        nonlocal attempts
        attempts += 1
        return KafkaConnectionError("reconnecting") if attempts <= 3 else None

    broker = FakeBroker(flaky)
    publisher = publisher_for(buffer, broker, metrics, interval_s=0.001, max_backoff_s=0.01)
    for i in range(3):
        buffer.add(prediction(f"r{i}"))
    task = asyncio.create_task(publisher.run())
    try:
        async with asyncio.timeout(5):
            while publisher.waiting:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
    assert broker.ids() == ["r0", "r1", "r2"]
    assert metrics.failures == {"retried": 3} and not metrics.dropped_records
