"""Labels in bulk on the feedback topic, against a real broker: `FeedbackBatch` events produced by an application
(as docs/monitor.md shows) join next to single `FeedbackReceived` ones, the bulk REST endpoint publishes batches,
and a batch that disagrees with itself is dead-lettered with its reason while the good ones around it join."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelyard.contracts.events.v1 import monitor_events_pb2
from modelyard.events import envelope
from modelyard.events.envelope import Event
from modelyard.events.topics import MONITOR_FEEDBACK, SERVING_PREDICTIONS
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.producer import EventPublisher
from modelyard.monitor.bootstrap import build, service
from modelyard.monitor.config import MonitorSettings
from modelyard.monitor.testing import answers, prediction_events, setting_values, until, write_classifier_reference
from modelyard.testing.signing import read_records

pytestmark = pytest.mark.integration
N = 900


async def test_feedback_batches_join_beside_single_labels_and_a_broken_one_is_dead_lettered(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    await ensure_topics(kafka_bootstrap)
    model = f"bulk-{uuid.uuid4().hex[:6]}"
    config = MonitorSettings.model_validate(setting_values(kafka_bootstrap, tmp_path))
    write_classifier_reference(config.resolved_reference_dir, model, 1, accuracy=0.9)
    parts = build(config)
    store = parts.store
    events = prediction_events(model, 1, N, seed=5, classifier=True)
    truth = [(request_id, str(int(predicted))) for e in events for request_id, predicted in answers(e.payload)]  # type: ignore[arg-type]
    ids = [r for r, _ in truth]

    def feedback_batch(part: list[tuple[str, str]]) -> Event:
        payload = monitor_events_pb2.FeedbackBatch(
            model_name=model,
            request_ids=[r for r, _ in part],
            labels=[label for _, label in part],
            time_unix_nano=np.full(len(part), time.time_ns(), "<i8").tobytes(),
        )
        return Event.new(model, payload, "my-app")

    broken = feedback_batch(truth[300:310])
    del broken.payload.labels[-1]  # type: ignore[attr-defined]
    single = monitor_events_pb2.FeedbackReceived(request_id=ids[300], model_name=model, label=truth[300][1])
    async with service(parts).running() as running, EventPublisher(kafka_bootstrap) as publisher:
        await publisher.publish_many(SERVING_PREDICTIONS, events)
        await until(lambda: sum(s.records_seen for s in store.statuses(model)) == N, "the predictions")
        await publisher.publish_many(
            MONITOR_FEEDBACK,
            [feedback_batch(truth[:300]), broken, Event.new(model, single, "my-app"), feedback_batch(truth[301:600])],
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.http.port}") as http:
            body = [{"request_id": r, "model_name": model, "label": label} for r, label in truth[600:]]
            accepted = await http.post("/api/v1/feedback/batch", json={"labels": body})
            assert (accepted.status_code, accepted.json()) == (202, {"accepted": N - 600})
        await until(lambda: store.statuses(model)[0].label_coverage == 1.0, "every label to join")
    (status,) = store.statuses(model)
    assert status.performance["accuracy"] == 1.0
    records = [r for r in await read_records(kafka_bootstrap, MONITOR_FEEDBACK.name) if r.key == model.encode()]
    kinds = [type(envelope.decode(r.key, r.value, r.headers).payload).__name__ for r in records]
    assert kinds == ["FeedbackBatch", "FeedbackBatch", "FeedbackReceived", "FeedbackBatch", "FeedbackBatch"]
    (dead,) = [r for r in await read_records(kafka_bootstrap, MONITOR_FEEDBACK.dlq) if r.key == model.encode()]
    reason = dict(dead.headers)["modelyard_dlq_error"].decode()
    assert "10 request ids: 9 labels and 0 targets" in reason
