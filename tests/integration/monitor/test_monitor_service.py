"""The monitor service against a real broker: predictions in, incidents out on modelyard.monitor.alerts.

Reference data comes from the local-file source (the registry source: test_monitor_registry_references.py).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import httpx
import pytest

from modelyard.contracts.events.v1 import monitor_events_pb2, serving_events_pb2
from modelyard.contracts.monitor.v1 import monitor_service_pb2 as pb
from modelyard.contracts.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from modelyard.events import envelope
from modelyard.events.signing import key_id
from modelyard.events.topics import MONITOR_ALERTS, SERVING_PREDICTIONS
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.producer import EventPublisher
from modelyard.monitor.bootstrap import build, service
from modelyard.monitor.domain.simulation import Shift
from modelyard.monitor.testing import prediction_events, settings, until, write_reference
from modelyard.sql.outbox import pending_count
from modelyard.testing.signing import MONITOR_KEY, read_records, trusted

pytestmark = pytest.mark.integration
MONITOR_KEY_ID = key_id(MONITOR_KEY.public_key())


async def alerts_for(bootstrap: str, model: str) -> list[monitor_events_pb2.IncidentChanged]:
    """The model's incidents on the alerts topic, each checked to carry the monitor's signature."""
    records = [r for r in await read_records(bootstrap, MONITOR_ALERTS.name) if r.key == model.encode()]
    for r in records:
        assert trusted().verify("monitor", MONITOR_ALERTS.name, r.key, r.value, r.headers) == MONITOR_KEY_ID
    events = [envelope.decode(r.key, r.value, r.headers) for r in records]
    return [e.payload for e in events if isinstance(e.payload, monitor_events_pb2.IncidentChanged)]


async def check_query_apis(grpc_port: int, http_port: int, model: str) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = pb_grpc.MonitorServiceStub(channel)
        (status,) = (await stub.GetStatus(pb.GetStatusRequest(model_name=model))).versions
        assert (status.windows_closed, status.records_seen, status.open_incidents) == (2, 1000, 1)
        assert status.last_window.tested and status.last_window.operations["latency_p99_ms"] == pytest.approx(10.0)
        history = await stub.ListWindows(pb.ListWindowsRequest(model_name=model, version=1, feature="x[4]"))
        assert [(len(w.features), w.features[0].breached) for w in history.windows] == [(1, True), (1, True)]
        incidents = await stub.ListIncidents(pb.ListIncidentsRequest(model_name=model, open_only=True))
        # One data drift incident about the model, naming the two shifted features in its evidence.
        (incident,) = incidents.incidents
        assert incident.feature == "" and {e.feature for e in incident.evidence} == {"x[4]", "x[6]"}
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.Rebaseline(pb.RebaselineRequest(model_name="no-such-model", version=1))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
        incidents_json = (await http.get("/api/v1/incidents", params={"model_name": model})).json()
        assert [i["feature"] for i in incidents_json] == [""]
        assert {e["feature"] for e in incidents_json[0]["evidence"]} == {"x[4]", "x[6]"}
        assert incidents_json[0]["evidence"][0]["statistic"] == "ks"
        metrics = (await http.get("/metrics")).text
        assert f'modelyard_monitor_incidents_total{{change="opened",model="{model}"' in metrics


async def test_seeded_drift_opens_an_incident_and_a_null_stream_does_not(kafka_bootstrap: str, tmp_path: Path) -> None:
    await ensure_topics(kafka_bootstrap)
    drifted, steady = f"drifted-{uuid.uuid4().hex[:6]}", f"steady-{uuid.uuid4().hex[:6]}"
    config = settings(kafka_bootstrap, tmp_path)
    for model in (drifted, steady):
        write_reference(config.resolved_reference_dir, model, 1)
    parts = build(config)
    store = parts.store
    async with service(parts).running() as running, EventPublisher(kafka_bootstrap) as publisher:
        await publisher.publish_many(SERVING_PREDICTIONS, prediction_events(steady, 1, 2000, seed=1))
        shift = Shift(numeric_features=(4, 6), mean_sd=0.5)
        drift_events = prediction_events(drifted, 1, 1000, seed=2, shift=shift)
        await publisher.publish_many(SERVING_PREDICTIONS, drift_events)

        def windows(model: str) -> int:
            return sum(s.windows_closed for s in store.statuses(model))

        await until(lambda: windows(steady) == 4 and windows(drifted) == 2, "the windows to close")
        await until(lambda: pending_count(store.engine, store.outbox) == 0, "the outbox to drain")
        await check_query_apis(running.grpc.port, running.http.port, drifted)
        # Ground truth over gRPC travels through the feedback topic and joins its prediction.
        batch = drift_events[0].payload
        assert isinstance(batch, serving_events_pb2.PredictionBatch)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc.port}") as channel:
            feedback = pb.SendFeedbackRequest(request_id=batch.request_ids[0], model_name=drifted, label="1")
            await pb_grpc.MonitorServiceStub(channel).SendFeedback(feedback)
        await until(lambda: store.statuses(drifted)[0].label_coverage > 0, "the label to join its prediction")
    assert store.incident_views(steady) == []
    opened = {(i.signal.value, i.feature) for i in store.incident_views(drifted)}
    assert opened == {("data_drift", "")}
    alerts = await alerts_for(kafka_bootstrap, drifted)
    assert [(a.feature, a.state) for a in alerts] == [("", monitor_events_pb2.IncidentChanged.STATE_OPENED)]
    assert {e.feature for e in alerts[0].evidence} == {"x[4]", "x[6]"}
    for evidence in alerts[0].evidence:
        assert evidence.statistic == "ks" and evidence.p_value < evidence.threshold and evidence.n_current == 500
    assert alerts[0].reference_id.startswith(f"{drifted}/1/") and alerts[0].config_hash.startswith("sha256:")
    assert await alerts_for(kafka_bootstrap, steady) == []
