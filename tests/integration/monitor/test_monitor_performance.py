"""Performance monitoring through the service, against a real broker: labels in bulk over the streaming gRPC call
and the batch REST endpoint, realised performance per window over both APIs, and a critical performance incident
on the alerts topic when accuracy falls far below the reference's."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import httpx
import pytest

from modelyard.contracts.events.v1 import monitor_events_pb2, serving_events_pb2
from modelyard.contracts.monitor.v1 import monitor_service_pb2 as pb
from modelyard.contracts.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from modelyard.events import envelope
from modelyard.events.topics import MONITOR_ALERTS, SERVING_PREDICTIONS
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.producer import EventPublisher
from modelyard.monitor.bootstrap import build, service
from modelyard.monitor.config import MonitorSettings
from modelyard.monitor.domain.incidents import Severity, Signal
from modelyard.monitor.testing import answers, prediction_events, setting_values, until, write_classifier_reference
from modelyard.testing.signing import read_records

pytestmark = pytest.mark.integration
N = 1200


def wrong_labels(events: Sequence[envelope.Event], every: int) -> list[tuple[str, str]]:
    """(request id, truth) for every prediction: the truth disagrees with the prediction on one in `every`."""
    labels = []
    for event in events:
        assert isinstance(event.payload, serving_events_pb2.PredictionBatch)
        for request_id, predicted in answers(event.payload):
            labels.append((request_id, str(int(predicted) ^ int(len(labels) % every == 0))))
    return labels


async def requests(model: str, labels: Sequence[tuple[str, str]]) -> AsyncIterator[pb.SendFeedbackStreamRequest]:
    for request_id, label in labels:
        yield pb.SendFeedbackStreamRequest(request_id=request_id, model_name=model, label=label)


async def test_bulk_labels_give_windowed_performance_and_a_critical_incident(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    await ensure_topics(kafka_bootstrap)
    model = f"classifier-{uuid.uuid4().hex[:6]}"
    values = setting_values(kafka_bootstrap, tmp_path) | {"performance_window_labels": "200"}
    config = MonitorSettings.model_validate(values)
    write_classifier_reference(config.resolved_reference_dir, model, 1, accuracy=0.9)
    parts = build(config)
    store = parts.store
    events = prediction_events(model, 1, N, seed=3, classifier=True)
    labels = wrong_labels(events, every=2)  # accuracy 0.5 against the reference's 0.9
    async with service(parts).running() as running, EventPublisher(kafka_bootstrap) as publisher:
        await publisher.publish_many(SERVING_PREDICTIONS, events)
        await until(lambda: sum(s.records_seen for s in store.statuses(model)) == N, "the predictions")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc.port}") as channel:
            stub = pb_grpc.MonitorServiceStub(channel)
            answer = await stub.SendFeedbackStream(requests(model, labels[:600]))
            assert answer.accepted == 600
            # A bad label ends the stream, naming its position; the ones before it were published.
            broken = [*labels[600:610], ("", "1"), *labels[610:620]]
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stub.SendFeedbackStream(requests(model, broken))
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "label 10:" in (bad.value.details() or "") and "10 before it were accepted" in (
                bad.value.details() or ""
            )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.http.port}") as http:
            body = [{"request_id": r, "model_name": model, "label": label} for r, label in labels[610:]]
            refused = await http.post("/api/v1/feedback/batch", json={"labels": [*body[:5], {"model_name": model}]})
            assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][:3] == ["body", "labels", 5]
            accepted = await http.post("/api/v1/feedback/batch", json={"labels": body})
            assert (accepted.status_code, accepted.json()) == (202, {"accepted": N - 610})

            def joined() -> float:
                return store.statuses(model)[0].label_coverage

            await until(lambda: joined() == 1.0, "every label to join its prediction")
            performance = (await http.get(f"/api/v1/models/{model}/versions/1/performance")).json()
            assert performance["baseline"]["accuracy"]["value"] == pytest.approx(0.9, abs=0.02)
            (window,) = performance["windows"]  # every prediction is in one slot of an hour
            assert (window["predictions"], window["labelled"]) == (N, N)
            assert window["metrics"]["accuracy"] == pytest.approx(0.5)
            metrics = (await http.get("/metrics")).text
            assert (
                f'modelyard_monitor_realised_performance{{metric="accuracy",model="{model}",version="1"}} 0.5'
                in metrics
            )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc.port}") as channel:
            listed = await pb_grpc.MonitorServiceStub(channel).ListPerformance(
                pb.ListPerformanceRequest(model_name=model, version=1)
            )
            assert listed.windows[0].metrics["accuracy"] == pytest.approx(0.5)
            assert 0 < listed.baseline["accuracy"].standard_error < 0.02
    (incident,) = store.incident_views(model, open_only=True)
    assert (incident.signal, incident.feature, incident.severity) == (Signal.PERFORMANCE, "accuracy", Severity.CRITICAL)
    records = [r for r in await read_records(kafka_bootstrap, MONITOR_ALERTS.name) if r.key == model.encode()]
    alerts = [envelope.decode(r.key, r.value, r.headers).payload for r in records]
    assert [a.severity for a in alerts if isinstance(a, monitor_events_pb2.IncidentChanged)] == [
        monitor_events_pb2.SEVERITY_CRITICAL
    ]
