"""The service runtime on real sockets: gRPC health and reflection, HTTP probes and metrics, readiness against a
real (and a dead) broker, graceful stop on SIGTERM, and a clear error on a port clash."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from modelyard.contracts.registry.v1 import registry_service_pb2, registry_service_pb2_grpc
from modelyard.kafka.embedded import free_port
from modelyard.registry.config import RegistrySettings
from modelyard.registry.entrypoints.access import ACCESS
from modelyard.runtime import GrpcApi, PortInUseError, Service

pytestmark = pytest.mark.integration

SERVING: int = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING
PROCESS_START_TIMEOUT_S = 90.0  # a fresh interpreter importing the registry's stack, on a busy machine
REGISTRY_API: str = registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name


def registry_settings(kafka_bootstrap: str, **overrides: object) -> RegistrySettings:
    values: dict[str, object] = {
        "grpc_port": 0,
        "http_port": 0,
        "kafka_bootstrap": kafka_bootstrap,
        "shutdown_grace_s": 2.0,
    }
    return RegistrySettings(**{**values, **overrides})  # type: ignore[arg-type]


def dead_broker() -> str:
    return f"127.0.0.1:{free_port()}"


async def eventually(condition: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout_s}s"
        await asyncio.sleep(0.05)


async def health_status(port: int, name: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=name), timeout=5
        )
    return int(response.status)


async def reflected_services(port: int) -> set[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        async for response in call:
            return {service.name for service in response.list_services_response.service}
    return set()


def registry_api() -> GrpcApi:
    # The generated base servicer answers UNIMPLEMENTED: enough to see registration, health and reflection.
    servicer = registry_service_pb2_grpc.RegistryServiceServicer()
    add: Callable[[object, grpc.aio.Server], None] = registry_service_pb2_grpc.add_RegistryServiceServicer_to_server
    return GrpcApi(REGISTRY_API, lambda server: add(servicer, server))


async def test_ready_service_serves_health_reflection_probes_and_metrics(kafka_bootstrap: str) -> None:
    service = Service(registry_settings(kafka_bootstrap), access=ACCESS, grpc_apis=[registry_api()])
    async with service.running(), httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http.port}") as http:

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await eventually(ready)
        assert (await http.get("/readyz")).json() == {"ready": True, "draining": False, "failing": {}, "degraded": {}}
        assert (await http.get("/healthz")).status_code == 200
        metrics = await http.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "# TYPE modelyard_ready gauge" in metrics.text
        assert 'modelyard_ready{service="registry"} 1.0' in metrics.text
        assert 'modelyard_readiness_check_passing{check="kafka",service="registry"} 1.0' in metrics.text

        assert await health_status(service.grpc.port) == SERVING
        assert await health_status(service.grpc.port, REGISTRY_API) == SERVING
        assert await reflected_services(service.grpc.port) >= {
            REGISTRY_API,
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        }


async def test_dead_broker_keeps_the_service_unready_and_names_the_check() -> None:
    service = Service(registry_settings(dead_broker()), access={}, grpc_health_names=[REGISTRY_API])
    async with service.running(), httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http.port}") as http:

        async def evaluated() -> bool:
            return service.readiness.report.checked_at is not None

        await eventually(evaluated)
        response = await http.get("/readyz")
        assert response.status_code == 503
        assert list(response.json()["failing"]) == ["kafka"]
        assert "KafkaConnectionError" in response.json()["failing"]["kafka"]
        assert (await http.get("/healthz")).status_code == 200  # alive, just not ready
        assert await health_status(service.grpc.port) == NOT_SERVING
        assert await health_status(service.grpc.port, REGISTRY_API) == NOT_SERVING


async def test_health_turns_serving_only_once_every_check_passes() -> None:
    up = {"database": False, "cache": False}

    async def database() -> bool:
        return up["database"]

    async def cache() -> bool:
        if not up["cache"]:
            raise ConnectionRefusedError("cache at 127.0.0.1:1")
        return True

    checks = {"database": database, "cache": cache}
    service = Service(registry_settings(dead_broker(), kafka_required=False), access={}, readiness_checks=checks)
    async with service.running(), httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http.port}") as http:

        async def evaluated() -> bool:
            return service.readiness.report.checked_at is not None

        await eventually(evaluated)
        failing = (await http.get("/readyz")).json()["failing"]
        assert failing == {"database": "check returned false", "cache": "ConnectionRefusedError: cache at 127.0.0.1:1"}

        up["database"] = True

        async def only_cache_failing() -> bool:
            failing: dict[str, str] = (await http.get("/readyz")).json()["failing"]
            return list(failing) == ["cache"]

        await eventually(only_cache_failing)
        assert await health_status(service.grpc.port) == NOT_SERVING

        up["cache"] = True

        async def serving() -> bool:
            return await health_status(service.grpc.port) == SERVING

        await eventually(serving)
        assert (await http.get("/readyz")).status_code == 200


async def test_stop_reports_not_serving_and_drains_in_flight_calls() -> None:
    service = Service(registry_settings(dead_broker(), kafka_required=False, shutdown_grace_s=1.0), access={})
    await service.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        statuses = [(await watch.read()).status]
        if statuses[0] != SERVING:
            statuses.append((await watch.read()).status)
        assert statuses[-1] == SERVING
        stopping = asyncio.create_task(service.stop())
        assert (await watch.read()).status == NOT_SERVING  # while the watch itself is still being drained
        started = time.monotonic()
        await stopping
        assert time.monotonic() - started < 1.0 + 1.5  # the open stream got the grace, not more


async def test_failing_background_task_stops_the_service_with_an_error_code() -> None:
    async def consumer() -> None:
        raise RuntimeError("lost the partition for good")

    service = Service(
        registry_settings(dead_broker(), kafka_required=False), access={}, background_tasks={"consumer": consumer}
    )
    code = await asyncio.wait_for(service.run(asyncio.Event()), timeout=10)
    assert code == 1


@pytest.fixture
def occupied_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("kind", ["grpc", "http"])
async def test_port_clash_in_process_raises_and_releases_the_other_port(kind: str, occupied_port: int) -> None:
    other_port = free_port()
    ports = {"grpc_port": other_port, "http_port": occupied_port}
    if kind == "grpc":
        ports = {"grpc_port": occupied_port, "http_port": other_port}
    service = Service(registry_settings(dead_broker(), **ports), access={})
    with pytest.raises(PortInUseError) as raised:
        await service.start()
    assert raised.value.port == occupied_port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", other_port))  # nothing left holding it


def registry_process(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "modelyard.registry"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_stops_the_process_with_exit_code_zero_within_the_grace(kafka_bootstrap: str) -> None:
    grace_s = 5.0
    http_port = free_port()
    process = registry_process(
        {
            "MODELYARD_REGISTRY_GRPC_PORT": str(free_port()),
            "MODELYARD_REGISTRY_HTTP_PORT": str(http_port),
            "MODELYARD_REGISTRY_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "MODELYARD_REGISTRY_SHUTDOWN_GRACE_S": str(grace_s),
        }
    )
    try:
        deadline = time.monotonic() + PROCESS_START_TIMEOUT_S
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"registry not ready within {PROCESS_START_TIMEOUT_S}s"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, stderr = process.communicate(timeout=grace_s + 5)
        assert process.returncode == 0, stderr
        assert time.monotonic() - started < grace_s
        assert "registry stopped" in stderr
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("kind", ["GRPC", "HTTP"])
def test_port_clash_exits_non_zero_with_a_clear_message(kind: str, occupied_port: int) -> None:
    env = {
        "MODELYARD_REGISTRY_GRPC_PORT": str(free_port()),
        "MODELYARD_REGISTRY_HTTP_PORT": str(free_port()),
        f"MODELYARD_REGISTRY_{kind}_PORT": str(occupied_port),
        "MODELYARD_REGISTRY_KAFKA_BOOTSTRAP": dead_broker(),
    }
    process = registry_process(env)
    _, stderr = process.communicate(timeout=PROCESS_START_TIMEOUT_S)
    assert process.returncode == 1
    assert f"{'gRPC' if kind == 'GRPC' else 'HTTP'} port {occupied_port} on 127.0.0.1 is already in use" in stderr
    assert "Traceback" not in stderr
