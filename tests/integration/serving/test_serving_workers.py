"""`python -m modelyard.serving` with two worker processes, on the test broker: each worker enacts every decision,
no request fails across version changes, readiness and /metrics are those of both workers, a killed worker is
restarted (readiness drops, then recovers), SIGTERM drains all, and a port in use fails the start."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelyard.contracts.events.v1 import governance_events_pb2 as gov
from modelyard.contracts.events.v1 import serving_events_pb2 as srv
from modelyard.contracts.inference import grpc_service_pb2_grpc as pb_grpc
from modelyard.events.envelope import Event
from modelyard.events.topics import GOVERNANCE_DECISIONS, SERVING_STATUS
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.embedded import free_port
from modelyard.serving.testing import InferenceLoad, ModelRepository, infer_request, plan, variant
from modelyard.testing.models import TrainedModel
from modelyard.testing.signing import GOVERNANCE_KEY, GOVERNANCE_PUBLIC, signed_publisher
from tests.integration.serving.test_serving_events import TopicReader

pytestmark = pytest.mark.integration

WORKERS = 2
CLIENTS = 16
START_TIMEOUT_S = 90.0


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    model: str
    replica: str
    grpc_port: int
    http_port: int
    repository: ModelRepository
    log: Path

    def readyz(self) -> httpx.Response:
        # A new connection each time: SO_REUSEPORT hands each one to any of the workers.
        return httpx.get(f"http://127.0.0.1:{self.http_port}/readyz", timeout=5, headers={"connection": "close"})

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` with `labels`, as one scrape of /metrics answers it."""
        text = httpx.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5, headers={"connection": "close"}).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def workers(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()


def serving_process(
    root: Path, kafka_bootstrap: str, replica: str, grpc_port: int, http_port: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MODELYARD_SERVING_WORKERS": str(WORKERS),
        "MODELYARD_SERVING_DATA_DIR": str(root),
        "MODELYARD_SERVING_GRPC_PORT": str(grpc_port),
        "MODELYARD_SERVING_HTTP_PORT": str(http_port),
        "MODELYARD_SERVING_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MODELYARD_SERVING_REPLICA": replica,
        "MODELYARD_SERVING_TRUSTED_GOVERNANCE_KEYS": f'["{GOVERNANCE_PUBLIC}"]',
        "MODELYARD_SERVING_SHUTDOWN_GRACE_S": "3",
        "MODELYARD_SERVING_EXPLAIN_WORKERS": "1",
    }
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "modelyard.serving"], env=env, stdout=out, stderr=out)


def wait_ready(served: Served, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert served.process.poll() is None, served.log.read_text()[-3000:]
        try:
            if served.readyz().status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"not ready within {timeout_s}s: {served.log.read_text()[-3000:]}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, onnx_models: dict[str, TrainedModel]
) -> Iterator[Served]:
    asyncio.run(ensure_topics(kafka_bootstrap))
    root = tmp_path_factory.mktemp("workers")
    repository = ModelRepository(root)
    model = f"bc-{uuid.uuid4().hex[:6]}"  # other tests' decisions on the session broker name other models
    repository.write_plans(plan(repository.add(model, 1, onnx_models["breast-cancer"].onnx)))
    replica = f"workers-{uuid.uuid4().hex[:6]}"
    grpc_port, http_port = free_port(), free_port()
    log = root / "serving.log"
    process = serving_process(root, kafka_bootstrap, replica, grpc_port, http_port, log)
    served = Served(process, model, replica, grpc_port, http_port, repository, log)
    try:
        wait_ready(served)
        yield served
    finally:
        process.kill()
        process.wait()


async def test_no_request_fails_across_version_changes_and_every_worker_enacts_every_decision(
    served: Served, kafka_bootstrap: str, onnx_models: dict[str, TrainedModel]
) -> None:
    breast_cancer = onnx_models["breast-cancer"]
    model, repository = served.model, served.repository
    v1 = repository.add(model, 1, breast_cancer.onnx)
    v2 = repository.add(model, 2, variant(breast_cancer.onnx, "v2"))
    v3 = repository.add(model, 3, variant(breast_cancer.onnx, "v3"))
    load = InferenceLoad(model, breast_cancer.sample)

    async def client(number: int) -> None:
        # A channel per client: one HTTP/2 connection each, spread over the workers by the kernel.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
            await load.client(pb_grpc.GRPCInferenceServiceStub(channel), number)  # type: ignore[no-untyped-call]

    steps = [
        plan(v2, revision=2),
        plan(v2, revision=3, canary=v3, canary_weight=0.5),
        plan(v3, revision=4),
        plan(v1, revision=5),
    ]
    workers = {f"{served.replica}-w{i}" for i in range(WORKERS)}

    def loaded_everywhere(version: int, payloads: list[object]) -> bool:
        return workers <= {
            p.replica for p in payloads if isinstance(p, srv.ModelLoaded) and p.version.version == version
        }

    bus = signed_publisher(kafka_bootstrap, GOVERNANCE_KEY)
    async with bus, TopicReader(kafka_bootstrap, SERVING_STATUS) as status:
        clients = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
        async with asyncio.timeout(120):
            for step in steps:
                await asyncio.sleep(0.3)
                decision = gov.DeploymentApproved(request_id=f"p-{step.revision}", plan=step)
                await bus.publish(GOVERNANCE_DECISIONS, Event.new(model, decision, "governance"))
                await status.wait_for(lambda ps, v=step.primary.version: loaded_everywhere(v, ps))
            await load.finish(clients)

    assert load.failures == []
    assert set(load.answered) == {"1", "2", "3"}
    assert sum(load.answered.values()) > 100


async def test_metrics_add_up_every_workers_requests(served: Served, onnx_models: dict[str, TrainedModel]) -> None:
    requests = {"model": served.model, "version": "1", "code": "OK"}
    before = [served.metric("modelyard_serving_requests_total", **requests) for _ in range(4)]
    assert len(set(before)) == 1  # every worker answers the same total

    async def one_request(number: int) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
            await stub.ModelInfer(infer_request(served.model, onnx_models["breast-cancer"].sample[:1], f"m{number}"))

    await asyncio.gather(*(one_request(n) for n in range(40)))
    # Whichever worker a scrape reaches, it counts the requests of both (each served some: 40 connections).
    after = [served.metric("modelyard_serving_requests_total", **requests) for _ in range(6)]
    assert [count - before[0] for count in after] == [40.0] * 6
    pids = {p.pid for p in served.workers()}
    assert len(pids) == WORKERS


def test_a_killed_worker_shows_in_readiness_and_is_restarted(served: Served) -> None:
    wait_ready(served)
    restarts = served.metric("modelyard_worker_restarts")
    victim = served.workers()[0]
    victim.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (answer := served.readyz()).status_code == 200:
        assert time.monotonic() < deadline, "readiness never dropped"
        time.sleep(0.05)
    failing = answer.json()["failing"]
    assert "workers" in failing and "exited with code -9" in failing["workers"], failing
    wait_ready(served)
    assert len(served.workers()) == WORKERS and victim.pid not in {p.pid for p in served.workers()}
    assert served.metric("modelyard_worker_restarts") == restarts + 1


def test_sigterm_drains_every_worker_and_exits_zero(served: Served) -> None:
    wait_ready(served)
    workers = served.workers()
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=30) == 0
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert alive == []
    log = served.log.read_text()
    assert "serving stopped" in log
    assert all(f'"worker": {i}' in log for i in range(WORKERS))  # each worker's lines say whose they are


def test_a_port_in_use_fails_the_start(tmp_path: Path, kafka_bootstrap: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        log = tmp_path / "serving.log"
        process = serving_process(tmp_path, kafka_bootstrap, "clash", free_port(), taken.getsockname()[1], log)
        assert process.wait(timeout=30) == 1
    assert "already in use" in log.read_text()


def test_a_worker_that_cannot_start_stops_the_service_with_exit_code_one(tmp_path: Path, kafka_bootstrap: str) -> None:
    asyncio.run(ensure_topics(kafka_bootstrap))
    plans = ModelRepository(tmp_path).plan_file
    plans.parent.mkdir(parents=True)
    plans.write_text("not a plan file")  # every worker's startup plans fail
    log = tmp_path / "serving.log"
    process = serving_process(tmp_path, kafka_bootstrap, "broken", free_port(), free_port(), log)
    try:
        assert process.wait(timeout=90) == 1
    finally:
        process.kill()
    assert "exited with code 1 before it was ready; stopping" in log.read_text()
