"""The service on a real broker: plans from governance decisions, status events, and the prediction stream."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.message import Message
from prometheus_client import REGISTRY

from modelyard.contracts.events.v1 import common_pb2
from modelyard.contracts.events.v1 import governance_events_pb2 as gov
from modelyard.contracts.events.v1 import serving_events_pb2 as srv
from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.contracts.inference import grpc_service_pb2_grpc as pb_grpc
from modelyard.events import columns, envelope
from modelyard.events.envelope import Event
from modelyard.events.topics import GOVERNANCE_DECISIONS, SERVING_PREDICTIONS, SERVING_STATUS, Topic
from modelyard.runtime import Service
from modelyard.serving.domain.tensors import DTYPES, to_raw
from modelyard.serving.testing import ONNX_TYPES, ModelRepository, infer_request, plan, variant
from modelyard.testing.models import TrainedModel
from modelyard.testing.signing import GOVERNANCE_KEY, signed_publisher

pytestmark = pytest.mark.integration


class TopicReader:
    """Reads a topic from the beginning in the background and keeps every decoded event."""

    def __init__(self, bootstrap: str, topic: Topic) -> None:
        self.events: list[Event] = []
        self._consumer = AIOKafkaConsumer(topic.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    async def _read(self) -> None:
        async for record in self._consumer:
            self.events.append(envelope.decode(record.key, record.value, record.headers))

    async def wait_for(self, condition: Callable[[list[Message]], bool], timeout_s: float = 30.0) -> list[Message]:
        async with asyncio.timeout(timeout_s):
            while not condition(payloads := [e.payload for e in self.events]):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        return payloads


@dataclass(frozen=True)
class Seen:
    """One record of the stream: its version, status, latency and each tensor's (shape, elements carried)."""

    version: common_pb2.ModelVersionRef
    status_code: int
    latency_ms: float
    inputs: dict[str, tuple[list[int], int]]
    outputs: dict[str, tuple[list[int], int]]


def records_of(reader: TopicReader, run: str) -> dict[str, Seen]:
    """The prediction records of this run so far (the topic also carries other tests' predictions), by request id."""
    seen = {}
    for event in reader.events:
        if not isinstance(event.payload, srv.PredictionBatch):
            continue
        records = columns.read_batch(event.payload)
        for i, request_id in enumerate(records.request_ids):
            if request_id.startswith(run):
                seen[request_id] = Seen(
                    event.payload.version,
                    int(records.status_codes[i]),
                    float(records.latency_ms[i]),
                    {c.name: (c.shapes[i].tolist(), int(c.counts[i])) for c in records.inputs},
                    {c.name: (c.shapes[i].tolist(), int(c.counts[i])) for c in records.outputs},
                )
    return seen


def stub_for(service: Service) -> tuple[grpc.aio.Channel, pb_grpc.GRPCInferenceServiceStub]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}")
    return channel, pb_grpc.GRPCInferenceServiceStub(channel)


async def test_stream_carries_every_prediction(
    service: Service, kafka_bootstrap: str, breast_cancer: TrainedModel
) -> None:
    run = uuid.uuid4().hex[:8]
    ids = [f"{run}-{i}" for i in range(300)]
    channel, stub = stub_for(service)
    async with channel, TopicReader(kafka_bootstrap, SERVING_PREDICTIONS) as reader:
        rows = breast_cancer.sample[:2]
        await asyncio.gather(*(stub.ModelInfer(infer_request("breast_cancer", rows, i)) for i in ids))
        bad = infer_request("breast_cancer", rows, f"{run}-bad")
        bad.inputs[0].shape[:] = [1, 60]
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.ModelInfer(bad)

        def records() -> dict[str, Seen]:
            return records_of(reader, run)

        await reader.wait_for(lambda _: len(records()) == len(ids) + 1)

    seen = records()
    assert set(seen) == {*ids, f"{run}-bad"}
    record = seen[ids[0]]
    assert (record.version.model_name, record.version.version) == ("breast_cancer", 1)
    assert record.version.digest.startswith("sha256:") and record.status_code == 0 and record.latency_ms > 0
    assert record.inputs == {"X": ([2, 30], 60)}
    assert list(record.outputs) == ["label", "probabilities"] and record.outputs["label"] == ([2], 2)
    assert seen[f"{run}-bad"].status_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    batch_keys = {e.key for e in reader.events if isinstance(e.payload, srv.PredictionBatch)}
    assert "breast_cancer" in batch_keys


def stream_count(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(f"modelyard_serving_stream_{metric}", labels) or 0.0


def identity_request(request_id: str, text: bytes) -> pb.ModelInferRequest:
    """identity_all with every input of one row; `text` is the BYTES input's first element."""
    request = pb.ModelInferRequest(model_name="identity_all", id=request_id)
    for datatype in ONNX_TYPES:
        if datatype == "BYTES":
            array = np.array([[text, b"a", b"b"]], dtype=np.object_)
        else:
            array = np.array([[0, 1, 1]], dtype=bool if datatype == "BOOL" else DTYPES[datatype])
        request.inputs.add(name=f"in_{datatype}", datatype=datatype, shape=[1, 3])
        request.raw_input_contents.append(to_raw(array))
    return request


async def test_one_oversized_request_is_cut_and_counted_and_the_stream_goes_on(
    service: Service, kafka_bootstrap: str, breast_cancer: TrainedModel
) -> None:
    """Issue 17, item 2: a 1.1 MB request id made a batch larger than the broker's 1 MiB limit, retried at the head
    of the buffer forever: no prediction of any model reached the stream again."""
    run = uuid.uuid4().hex[:8]
    huge_id = f"{run}-huge-" + "x" * 1_100_000
    ids = [f"{run}-{i}" for i in range(50)]
    cut_ids = stream_count("truncated_total", model="breast_cancer", reason="request_id")
    cut_tensors = stream_count("truncated_total", model="identity_all", reason="tensors")
    refused = stream_count("delivery_failures_total", outcome="refused")
    channel, stub = stub_for(service)
    async with channel, TopicReader(kafka_bootstrap, SERVING_PREDICTIONS) as reader:
        rows = breast_cancer.sample[:2]
        answer = await stub.ModelInfer(infer_request("breast_cancer", rows, huge_id))
        assert answer.id == huge_id  # the inference answers and echoes the whole id; only the record is cut
        big = await stub.ModelInfer(identity_request(f"{run}-big-tensor", b"y" * 2_000_000))
        assert big.outputs[-1].name == "out_BYTES"
        for request_id in ids:  # one at a time: they land in batches after the oversized records
            await stub.ModelInfer(infer_request("breast_cancer", rows, request_id))

        def records() -> dict[str, Seen]:
            return records_of(reader, run)

        await reader.wait_for(lambda _: len(records()) == len(ids) + 2)

    seen = records()
    assert set(ids) <= set(seen)
    assert huge_id[:128] in seen and seen[huge_id[:128]].inputs == {"X": ([2, 30], 60)}
    tensorless = seen[f"{run}-big-tensor"]  # its tensors' shapes are kept, their elements left out
    assert tensorless.status_code == 0 and tensorless.inputs and tensorless.outputs
    assert {count for _, count in [*tensorless.inputs.values(), *tensorless.outputs.values()]} == {0}
    assert stream_count("truncated_total", model="breast_cancer", reason="request_id") == cut_ids + 1
    assert stream_count("truncated_total", model="identity_all", reason="tensors") == cut_tensors + 1
    assert stream_count("delivery_failures_total", outcome="refused") == refused
    assert stream_count("pending") == 0
    batches = [e for e in reader.events if isinstance(e.payload, srv.PredictionBatch)]
    assert max(len(envelope.encode(e)[1]) for e in batches) <= 512 * 1024


async def test_governance_decisions_drive_what_is_served(
    service: Service, kafka_bootstrap: str, repository: ModelRepository, breast_cancer: TrainedModel
) -> None:
    v1 = plan(repository.add("breast_cancer", 1, breast_cancer.onnx)).primary
    v2 = repository.add("breast_cancer", 2, variant(breast_cancer.onnx, "v2"))
    forged = repository.add("breast_cancer", 3, variant(breast_cancer.onnx, "v3"))
    forged.digest = "sha256:" + "0" * 64
    channel, stub = stub_for(service)

    async def served_versions() -> list[str]:
        return list((await stub.ModelMetadata(pb.ModelMetadataRequest(name="breast_cancer"))).versions)

    replica = service.settings.replica  # type: ignore[attr-defined]

    def unloaded(version: int) -> Callable[[list[Message]], bool]:
        # This replica's: the status topic also carries earlier tests' replicas of the same model.
        return lambda ps: any(
            isinstance(p, srv.ModelUnloaded) and p.replica == replica and p.version.version == version for p in ps
        )

    bus = signed_publisher(kafka_bootstrap, GOVERNANCE_KEY)
    async with channel, TopicReader(kafka_bootstrap, SERVING_STATUS) as status, bus:
        decisions = [
            gov.DeploymentApproved(request_id="p-2", plan=plan(v2, revision=2)),
            gov.DeploymentApproved(request_id="p-3", plan=plan(forged, revision=3)),
            gov.RollbackOrdered(incident_id="i-1", plan=plan(v1, revision=4)),
        ]
        await bus.publish(GOVERNANCE_DECISIONS, Event.new("breast_cancer", decisions[0], "governance"))
        await status.wait_for(unloaded(1))
        assert await served_versions() == ["2"]
        await bus.publish(GOVERNANCE_DECISIONS, Event.new("breast_cancer", decisions[1], "governance"))
        failed = await status.wait_for(lambda ps: any(_refused(p, replica) for p in ps))
        assert await served_versions() == ["2"]  # a refused plan leaves the deployment as it was
        await bus.publish(GOVERNANCE_DECISIONS, Event.new("breast_cancer", decisions[2], "governance"))
        payloads = await status.wait_for(unloaded(2))
        assert await served_versions() == ["1"]

    refused = next(p for p in failed if _refused(p, replica))
    assert refused.version.version == 3 and "plan names sha256:000" in refused.reason
    loaded = [
        (p.version.version, p.version.digest)
        for p in payloads
        if isinstance(p, srv.ModelLoaded) and p.replica == replica
    ]
    assert (2, v2.digest) in loaded and loaded[-1] == (1, v1.digest)


def _refused(payload: object, replica: str) -> bool:
    """The forged v3's load failure in this replica (the status topic also carries other tests' replicas)."""
    return isinstance(payload, srv.ModelLoadFailed) and payload.replica == replica and payload.version.version == 3
