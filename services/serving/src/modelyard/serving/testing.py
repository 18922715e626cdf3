"""Test fixtures and helpers for serving: a serving core on a real grpc.aio server on loopback, the whole
service on the test broker, real ONNX models in a local model directory and a plan file (the registry's and
governance's stand-ins). Needs the dev dependencies (pytest, onnx); used by the serving tests at every level."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from opentelemetry import trace

from modelyard.contracts.events.v1 import common_pb2
from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.contracts.inference import grpc_service_pb2_grpc as pb_grpc
from modelyard.kafka.admin import ensure_topics
from modelyard.runtime import Service
from modelyard.runtime.grpc_server import UndecodableRequests
from modelyard.serving import bootstrap
from modelyard.serving.adapters.memory import InMemoryStatus
from modelyard.serving.adapters.plans import plan_file_entry
from modelyard.serving.bootstrap import VERSION, ServingParts
from modelyard.serving.config import ServingSettings
from modelyard.serving.domain.tensors import to_raw
from modelyard.serving.entrypoints.grpc import InferenceServicer, add_inference_service
from modelyard.testing.models import TrainedModel
from modelyard.testing.signing import GOVERNANCE_PUBLIC

ONNX_TYPES = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}


def identity_all_types() -> bytes:
    """One input `in_<TYPE>` and one output `out_<TYPE>` (Identity), shape [batch, 3], for every V2 datatype."""
    nodes = [helper.make_node("Identity", [f"in_{t}"], [f"out_{t}"]) for t in ONNX_TYPES]
    graph = helper.make_graph(
        nodes,
        "identity_all",
        [helper.make_tensor_value_info(f"in_{t}", code, [None, 3]) for t, code in ONNX_TYPES.items()],
        [helper.make_tensor_value_info(f"out_{t}", code, [None, 3]) for t, code in ONNX_TYPES.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def variant(artifact: bytes, tag: str) -> bytes:
    """The same model with another digest (a new doc string), to stand for a new version of it."""
    model = onnx.load_from_string(artifact)
    model.doc_string = tag
    return bytes(model.SerializeToString())


def digest(artifact: bytes) -> str:
    return "sha256:" + hashlib.sha256(artifact).hexdigest()


@dataclass
class ModelRepository:
    """A local model directory and plan file: the stand-ins for the registry and governance."""

    root: Path

    @property
    def models(self) -> Path:
        return self.root / "serving" / "models"

    @property
    def plan_file(self) -> Path:
        return self.root / "serving" / "plans.json"

    def add(self, name: str, version: int, artifact: bytes) -> common_pb2.ModelVersionRef:
        path = self.models / name / str(version) / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(artifact)
        return common_pb2.ModelVersionRef(model_name=name, version=version, digest=digest(artifact))

    def write_plans(self, *plans: common_pb2.DeploymentPlan) -> None:
        self.plan_file.parent.mkdir(parents=True, exist_ok=True)
        self.plan_file.write_text(json.dumps({"plans": [plan_file_entry(p) for p in plans]}))


def plan(primary: common_pb2.ModelVersionRef, revision: int = 1, **extra: Any) -> common_pb2.DeploymentPlan:
    return common_pb2.DeploymentPlan(model_name=primary.model_name, primary=primary, revision=revision, **extra)


@dataclass
class Harness:
    core: ServingParts
    status: InMemoryStatus
    repository: ModelRepository
    stub: pb_grpc.GRPCInferenceServiceStub
    address: str


def settings_for(root: Path, **overrides: Any) -> ServingSettings:
    options: dict[str, Any] = {"kafka_required": False, "stream_enabled": False, **overrides}
    return ServingSettings(data_dir=root, grpc_port=0, http_port=0, **options)


@pytest.fixture(scope="session")
def breast_cancer(onnx_models: dict[str, TrainedModel]) -> TrainedModel:
    return onnx_models["breast-cancer"]


@pytest.fixture
def repository(tmp_path: Path, breast_cancer: TrainedModel) -> ModelRepository:
    repository = ModelRepository(tmp_path)
    repository.write_plans(
        plan(repository.add("breast_cancer", 1, breast_cancer.onnx)),
        plan(repository.add("identity_all", 1, identity_all_types())),
    )
    return repository


@contextlib.asynccontextmanager
async def serving_on_loopback(
    repository: ModelRepository, tracer: trace.Tracer | None = None, **overrides: Any
) -> AsyncIterator[Harness]:
    """The serving core behind the gRPC servicer on a loopback port, without Kafka (status kept in memory)."""
    status = InMemoryStatus()
    core = bootstrap.build(settings_for(repository.root, **overrides), status=status)
    await core.lifecycle.load_startup_plans()
    server = grpc.aio.server(interceptors=[UndecodableRequests()])
    servicer = InferenceServicer(core.dataplane, core.lifecycle, VERSION, ready=lambda: True, tracer=tracer)
    add_inference_service(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    address = f"127.0.0.1:{port}"
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            yield Harness(core, status, repository, pb_grpc.GRPCInferenceServiceStub(channel), address)  # type: ignore[no-untyped-call]
    finally:
        await server.stop(None)
        await core.close()


@pytest.fixture
async def harness(repository: ModelRepository) -> AsyncIterator[Harness]:
    async with serving_on_loopback(repository) as harness:
        yield harness


def infer_request(model: str, rows: np.ndarray, request_id: str = "", version: str = "") -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    message.inputs.add(name="X", datatype="FP32", shape=rows.shape)
    message.raw_input_contents.append(to_raw(rows))
    return message


@dataclass
class InferenceLoad:
    """Clients that send one model's rows until `stop` is set (or 5,000 requests each), counting the answering
    versions and keeping every failure: the load of the swap-under-load tests."""

    model: str
    rows: np.ndarray
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    answered: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[grpc.aio.AioRpcError] = field(default_factory=list)

    async def client(self, stub: pb_grpc.GRPCInferenceServiceStub, number: int) -> None:
        sent = 0
        while not self.stop.is_set() and sent < 5_000:  # bounded even if the swaps hang
            try:
                response = await stub.ModelInfer(infer_request(self.model, self.rows, request_id=f"c{number}-{sent}"))
                self.answered[response.model_version] += 1
            except grpc.aio.AioRpcError as exc:
                self.failures.append(exc)
            sent += 1

    async def finish(self, clients: list[asyncio.Task[None]]) -> None:
        await asyncio.sleep(0.3)
        self.stop.set()
        await asyncio.gather(*clients)


def service_settings(root: Path, kafka_bootstrap: str, **overrides: Any) -> ServingSettings:
    """A replica of its own on the test broker, trusting the test governance key."""
    options: dict[str, Any] = {
        "data_dir": root,
        "grpc_port": 0,
        "http_port": 0,
        "kafka_bootstrap": kafka_bootstrap,
        "replica": f"test-{uuid.uuid4().hex[:8]}",
        "stream_interval_s": 0.02,
        "trusted_governance_keys": [GOVERNANCE_PUBLIC],
    }
    return ServingSettings(**{**options, **overrides})


@pytest.fixture
async def service(repository: ModelRepository, kafka_bootstrap: str) -> AsyncIterator[Service]:
    """The whole serving service as `python -m modelyard.serving` builds it, on the test broker."""
    await ensure_topics(kafka_bootstrap)
    running = bootstrap.service(bootstrap.build(service_settings(repository.root, kafka_bootstrap)))
    async with running.running():
        await wait_until(lambda: running.ready)
        yield running


async def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll `condition` (state changed by other tasks, with no event to await) until true or `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 60.0) -> None:
    """Poll an async `check` (a readiness probe, as a load balancer polls it) until true or `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.1)
