"""Labels in bulk: `FeedbackBatch` events as the feedback APIs publish them and as the consumer reads them (a bad one
is a permanent error with its reason), and the store's predictions waiting per batch: joined once, the first
prediction of a retried request id, blocks gone once labelled, seen by a second instance, pruned over the cap."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from modelyard.contracts.events.v1 import monitor_events_pb2
from modelyard.events.envelope import Event, Position
from modelyard.events.topics import MONITOR_FEEDBACK
from modelyard.kafka.consumer import PermanentError
from modelyard.monitor.adapters.events import FEEDBACK_BATCH_LABELS, checked_label, feedback_batches
from modelyard.monitor.adapters.pending import prune_pending
from modelyard.monitor.adapters.schema import labels, pending
from modelyard.monitor.domain.performance import PendingPrediction
from modelyard.monitor.domain.ports import Consumed
from modelyard.monitor.domain.records import Feedback
from modelyard.monitor.entrypoints.consumer import feedback_of
from modelyard.monitor.testing import answers, consumed
from tests.unit.monitor.test_monitor_handlers import batch, sqlite_monitor

pytestmark = pytest.mark.unit
NOW = datetime(2026, 1, 2, tzinfo=UTC)


def delivered(offset: int, request_ids: list[str], truths: list[str]) -> Consumed[Feedback]:
    """A FeedbackBatch as published and consumed (through its wire form)."""
    (event,) = feedback_batches([checked_label(r, "m", t, NOW) for r, t in zip(request_ids, truths, strict=True)])
    wire = monitor_events_pb2.FeedbackBatch.FromString(event.payload.SerializeToString())
    return Consumed(Position(MONITOR_FEEDBACK.name, 0, offset), feedback_of(Event.new("m", wire, "app")))


def test_bulk_labels_become_batches_per_model_and_kind_in_order() -> None:
    texts = [checked_label(f"a{i}", "m", str(i % 2), NOW) for i in range(FEEDBACK_BATCH_LABELS + 3)]
    values = [checked_label(f"v{i}", "m", float(i), NOW) for i in range(4)]
    others = [checked_label("o1", "other", "1", NOW)]
    events = feedback_batches([*texts[:2], *values, *others, *texts[2:]])
    payloads = [e.payload for e in events]
    assert all(isinstance(p, monitor_events_pb2.FeedbackBatch) for p in payloads)
    assert [(e.key, len(e.payload.request_ids)) for e in events] == [  # type: ignore[attr-defined]
        ("m", FEEDBACK_BATCH_LABELS),
        ("m", 3),
        ("m", 4),
        ("other", 1),
    ]
    read = [feedback_of(e) for e in events]
    assert [r for f in read[:2] for r in f.request_ids] == [x.request_id for x in texts]
    assert [t for f in read[:2] for t in f.truths] == [x.truth for x in texts]
    assert (list(read[2].request_ids), list(read[2].truths)) == ([f"v{i}" for i in range(4)], [0.0, 1.0, 2.0, 3.0])
    times = np.frombuffer(payloads[0].time_unix_nano, "<i8")  # type: ignore[union-attr]
    assert times.size == FEEDBACK_BATCH_LABELS and set(times.tolist()) == {int(NOW.timestamp() * 1e9)}


def test_a_batch_of_long_labels_is_cut_under_the_record_limit() -> None:
    long = [checked_label(f"{i:0128d}", "m", "x" * 255, NOW) for i in range(3000)]
    events = feedback_batches(long)
    assert len(events) > 1 and all(e.payload.ByteSize() < 1_000_000 for e in events)
    assert sum(len(e.payload.request_ids) for e in events) == 3000  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"request_ids": ["a", ""], "labels": ["1", "0"]}, "empty request id"),
        ({"request_ids": ["a", "b"], "labels": ["1"]}, "1 labels and 0 targets"),
        ({"request_ids": ["a"], "labels": ["1"], "targets": np.zeros(1).tobytes()}, "1 labels and 1 targets"),
        ({"request_ids": ["a"], "targets": b"\0" * 7}, "0 targets"),
        ({"request_ids": ["a"], "labels": ["1"], "time_unix_nano": b"\0" * 4}, "time_unix_nano holds 4 bytes"),
        ({}, "without labels"),
    ],
)
def test_a_feedback_batch_that_disagrees_with_itself_is_a_permanent_error(
    fields: dict[str, object], reason: str
) -> None:
    event = Event.new("m", monitor_events_pb2.FeedbackBatch(model_name="m", **fields), "app")  # type: ignore[arg-type]
    with pytest.raises(PermanentError, match=reason):
        feedback_of(event)


def test_batched_labels_join_once_and_their_blocks_go_when_all_are_labelled(tmp_path: Path) -> None:
    monitor_, store = sqlite_monitor(tmp_path / "monitor.db")
    first, second = batch("m", 0, 150, seed=1), batch("m", 150, 150, seed=2)
    monitor_.handle_predictions([consumed(0, first), consumed(1, second)])
    truth = {r: str(int(label)) for r, label in answers(first) + answers(second)}
    ids = list(truth)
    with store.engine.connect() as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(pending)) == 2  # a block per event, not a row each
    # One event with labels of both blocks, one of them twice: each prediction takes its first label.
    assert (
        monitor_.handle_feedback([delivered(0, [*ids[:200], ids[0]], [truth[r] for r in [*ids[:200], ids[0]]])]) == 200
    )
    assert monitor_.handle_feedback([delivered(1, ids[190:210], [truth[r] for r in ids[190:210]])]) == 10
    with store.engine.connect() as db:
        assert db.scalars(sa.select(pending.c.waiting)).all() == [90]  # the first block was labelled in full: gone
        assert db.scalar(sa.select(sa.func.count()).select_from(labels)) == 210
    (status,) = store.statuses("m")
    assert status.performance["accuracy"] == 1.0 and status.label_coverage == pytest.approx(210 / 300)


def test_a_retried_request_id_keeps_its_first_prediction(tmp_path: Path) -> None:
    monitor_, store = sqlite_monitor(tmp_path / "monitor.db")
    first = batch("m", 0, 10, seed=1)
    retried = batch("m", 0, 10, seed=2)  # the same request ids, later, with other answers
    monitor_.handle_predictions([consumed(0, first), consumed(1, retried)])
    found = store.pending_predictions(["m-3", "m-4"])
    event_times = {r: t for r, t in zip(first.request_ids, np.frombuffer(first.time_unix_nano, "<i8"), strict=True)}
    assert {r: (p.event_time, p.score) for r, p in found.items()} == {
        r: (event_times[r] * 1e-9, pytest.approx(score))
        for r, score in zip(first.request_ids, np.frombuffer(first.outputs[1].data, "<f8")[1::2], strict=True)
        if r in ("m-3", "m-4")
    }


def test_a_second_instance_sees_the_blocks_and_the_labels_the_first_took(tmp_path: Path) -> None:
    one, _ = sqlite_monitor(tmp_path / "monitor.db")
    two, store_two = sqlite_monitor(tmp_path / "monitor.db")
    assert store_two.pending_predictions(["m-0"]) == {}  # its index is built before any block exists
    message = batch("m", 0, 100, seed=1)
    one.handle_predictions([consumed(0, message)])
    truth = dict(answers(message))
    assert set(store_two.pending_predictions(["m-0", "m-99", "m-100"])) == {"m-0", "m-99"}
    assert one.handle_feedback([delivered(0, ["m-0", "m-1"], [str(int(truth["m-0"])), "1"])]) == 2
    waiting = store_two.pending_predictions(["m-0", "m-1", "m-2"])
    assert set(waiting) == {"m-2"} and isinstance(waiting["m-2"], PendingPrediction)
    assert two.handle_feedback([delivered(1, ["m-0", "m-2"], ["1", "1"])]) == 1


def test_over_the_cap_the_oldest_blocks_go(tmp_path: Path) -> None:
    monitor_, store = sqlite_monitor(tmp_path / "monitor.db")
    for offset in range(3):
        monitor_.handle_predictions([consumed(offset, batch("m", offset * 100, 100, seed=offset))])
    with store.engine.begin() as db:
        prune_pending(db, horizon=0.0, max_pending=250)  # 300 wait in three blocks: the oldest goes
    assert set(store.pending_predictions(["m-0", "m-99", "m-100", "m-299"])) == {"m-100", "m-299"}
