"""The prediction stream: a bounded buffer that drops and counts, records and batches capped (by bytes), catch-up
after an outage, and a batch the broker refuses for good dropped rather than retried."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaError, MessageSizeTooLargeError

from modelyard.contracts.events.v1 import serving_events_pb2 as srv
from modelyard.events import columns
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


def test_each_tensor_is_one_typed_column_per_batch_of_one_version() -> None:
    strings = np.array([["a", "\u00e9"]], dtype=np.object_)
    first = Prediction(
        "r-\u00e9", REF, 1_700_000_000_123_456_789, {"x": np.array([[1.5, -2.0]], np.float32), "s": strings},
        ["y"], [np.array([7], np.int64)], 0.0125, 3, "00-abc-def-01", 42,
    )  # fmt: skip
    second = Prediction(
        "r2", REF, 1_700_000_001_000_000_000, {"x": np.array([[4.0, 5.0], [6.0, 7.0]], np.float32)},
        ["y"], [np.array([8, 9], np.int64)], 0.001, 0, "",
    )  # fmt: skip
    other = Prediction("r3", VersionRef("m", 2, "sha256:def"), 1, {"x": np.ones((1, 2), np.float32)}, [], [], 0, 0, "")
    one, two = batches_of([first, other, second])

    assert (one.model_name, one.version, two.version.version) == ("m", version_ref_message(REF), 2)
    records = columns.read_batch(one)
    assert records.request_ids == ["r-\u00e9", "r2"] and records.traceparents == ["00-abc-def-01", ""]
    assert records.time_unix_nano.tolist() == [1_700_000_000_123_456_789, 1_700_000_001_000_000_000]
    assert records.latency_ms.tolist() == [12.5, 1.0] and records.status_codes.tolist() == [3, 0]
    assert records.plan_revisions.tolist() == [42, 0]  # provenance: the plan that routed each record
    assert not two.plan_revisions and columns.read_batch(two).plan_revisions.tolist() == [0]  # none: left out
    x, s = records.inputs
    assert (x.name, x.values.dtype, x.values.tolist()) == ("x", np.float32, [1.5, -2.0, 4.0, 5.0, 6.0, 7.0])
    assert (x.counts.tolist(), x.shapes.tolist()) == ([2, 4], [[1, 2], [2, 2]])
    assert (s.is_text, s.values.tolist(), s.counts.tolist(), s.shapes.tolist()) == (
        True, ["a", "\u00e9"], [2, 0], [[1, 2], [0, 0]],
    )  # fmt: skip
    (y,) = records.outputs
    assert (one.outputs[0].datatype, y.values.tolist(), y.counts.tolist()) == ("INT64", [7, 8, 9], [1, 2])
    assert not columns.read_batch(two).outputs and columns.read_batch(two).traceparents == []


def test_large_tensors_are_sampled_and_cut_to_the_cap() -> None:
    large = prediction("r", inputs=np.arange(100, dtype=np.float32))
    (kept,) = columns.read_batch(batches_of([large], RecordPolicy(max_values=10, large_sample_rate=1.0))[0]).inputs
    assert (kept.values.tolist(), kept.counts.tolist(), kept.shapes.tolist()) == (list(range(10)), [10], [[100]])
    (left,) = columns.read_batch(batches_of([large], RecordPolicy(max_values=10, large_sample_rate=0.0))[0]).inputs
    assert (left.values.size, left.counts.tolist(), left.shapes.tolist()) == (0, [0], [[100]])


def test_batches_are_cut_by_bytes_per_model_in_arrival_order() -> None:
    policy = RecordPolicy(max_record_bytes=1024, max_batch_bytes=2048)
    predictions = [
        prediction(f"{i:03d}", model="a" if i % 3 else "b", inputs=np.arange(16, dtype=np.float32)) for i in range(90)
    ]
    batches = batches_of(predictions, policy)

    assert len(batches) > 2 and all(batch.ByteSize() <= policy.max_batch_bytes for batch in batches)
    for model in ("a", "b"):
        own = [b for b in batches if b.model_name == model]
        ids = [i for b in own for i in b.request_ids]
        assert ids == [p.request_id for p in predictions if p.ref.model == model]
        # A batch is cut only when the next record does not fit: within 20% of the cap (its bound is not exact).
        assert all(batch.ByteSize() > 0.8 * policy.max_batch_bytes for batch in own[:-1])


def test_request_ids_over_the_cap_are_cut_on_a_character_boundary_and_counted() -> None:
    metrics = CountingMetrics()
    encoder = RecordEncoder(RecordPolicy(max_request_id_bytes=8), metrics)
    huge, accented, short = "x" * 1_100_000, "ab\u00e9\u00e9\u00e9\u00e9", "12345678"
    batch = encoder.batches([prediction(huge), prediction(accented), prediction(short)])[0]

    assert list(batch.request_ids) == ["x" * 8, "ab\u00e9\u00e9\u00e9", short]
    assert metrics.truncated_records == {("m", Cut.REQUEST_ID): 2}


def test_records_over_the_cap_lose_their_tensors_or_are_dropped() -> None:
    metrics = CountingMetrics()
    encoder = RecordEncoder(RecordPolicy(max_record_bytes=1024, max_batch_bytes=4096), metrics)
    text = np.array([["y" * 2_000_000, "a", "b"]], dtype=np.object_)  # one value, under max_values, 2 MB
    (batch,) = encoder.batches([prediction("big", inputs=text), prediction("small")])

    records = columns.read_batch(batch)
    assert records.request_ids == ["big", "small"] and records.latency_ms.tolist() == [2.0, 2.0]
    (x,) = records.inputs  # text for the big record, numbers for the small one: one text column
    assert (x.is_text, x.counts.tolist(), x.values.tolist()) == (True, [0, 3], ["1.0", "1.0", "1.0"])
    assert records.outputs[0].counts.tolist() == [0, 1]
    assert batch.ByteSize() < 4096 and metrics.truncated_records == {("m", Cut.TENSORS): 1}

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
        return [i for _, e in self.sent for i in e.payload.request_ids]  # type: ignore[attr-defined]


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
        poisoned = "poison" in batch.request_ids
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
