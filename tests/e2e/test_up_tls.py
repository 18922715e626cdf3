"""The stack as processes over TLS with mutual TLS (`modelyard up --tls`): the first half of the demo's loop
(register, approve, load v1, answer stock tritonclient) with every call over mutual TLS, serving fetching the
approved artifact from the registry and the monitor its reference dataset, over mutual TLS too; `modelyard status`
and the CLI talk TLS; a plaintext caller and one without a client certificate are refused."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from rich.console import Console

from modelyard.cli.demo import prepare_demo
from modelyard.cli.demo_scenario import MODEL, ROWS_PER_ROUND, Scenario
from modelyard.cli.demo_timeline import STEPS, Timeline
from modelyard.cli.stack import SERVICES, StackState
from modelyard.cli.up import StackOptions, running_stack
from modelyard.contracts.monitor.v1 import monitor_service_pb2 as monitor_pb
from modelyard.contracts.monitor.v1 import monitor_service_pb2_grpc as monitor_grpc
from modelyard.contracts.registry.v1 import registry_service_pb2 as registry_pb
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as registry_grpc
from modelyard.kafka.embedded import free_port
from modelyard.tls import ClientTls, grpc_aio_channel

pytestmark = pytest.mark.e2e

FIRST_VERSION_SERVED = STEPS[: STEPS.index("traffic answered by v1") + 1]
MONITOR_DEADLINE_S = 60.0


async def monitor_status(state: StackState) -> monitor_pb.VersionStatus:
    """v1's status on the monitor once it has seen the traffic and profiled the reference it fetched."""
    deadline = time.monotonic() + MONITOR_DEADLINE_S
    async with grpc_aio_channel(state.services["monitor"].grpc, state.client_tls) as channel:
        monitor = monitor_grpc.MonitorServiceStub(channel)  # type: ignore[no-untyped-call]
        while True:
            response = await monitor.GetStatus(monitor_pb.GetStatusRequest(model_name=MODEL), timeout=10)
            seen = {status.version: status for status in response.versions}
            first: monitor_pb.VersionStatus | None = seen.get(1)
            if first is not None and first.records_seen >= ROWS_PER_ROUND and first.reference_id:
                return first
            assert time.monotonic() < deadline, f"the monitor did not take in v1's traffic: {response}"
            await asyncio.sleep(0.2)


async def refusal(address: str, tls: ClientTls | None) -> grpc.StatusCode:
    async with grpc_aio_channel(address, tls) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await registry_grpc.RegistryServiceStub(channel).ListRegisteredModels(  # type: ignore[no-untyped-call]
                registry_pb.ListRegisteredModelsRequest(), timeout=5
            )
    return refused.value.code()


@pytest.mark.timeout(300)
def test_register_approve_infer_monitor_over_mutual_tls(tmp_path: Path) -> None:
    ports = sorted({free_port() for _ in range(40)})[: 1 + 2 * len(SERVICES)]
    options, work, tokens = prepare_demo(
        StackOptions(
            data_dir=tmp_path / "stack",
            broker_port=ports.pop(),
            ports=tuple(f"{service}.{kind}={ports.pop()}" for service in SERVICES for kind in ("grpc", "http")),
            timeout=180.0,
            tls=True,
        )
    )
    with running_stack(options) as stack:
        state = stack.state
        assert state.tls is not None and state.client_tls is not None
        assert all(record.http.startswith("https://") for record in state.services.values())

        scenario = Scenario(state, work, tokens, Timeline(Console(file=io.StringIO())))
        asyncio.run(scenario.run(full=False))
        assert scenario.result.failure is None, str(scenario.result.failure)
        assert tuple(scenario.result.steps) == FIRST_VERSION_SERVED
        assert scenario.result.traffic == {"v1 #0": {"1": ROWS_PER_ROUND}}

        status = asyncio.run(monitor_status(state))
        assert status.records_seen >= ROWS_PER_ROUND and status.reference_id

        cli = [sys.executable, "-m", "modelyard.cli"]
        healthy = subprocess.run([*cli, "status", "--data-dir", str(state.data_dir)], capture_output=True, text=True)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        tls = state.tls
        tls_options = ("--ca-file", str(tls.ca_file), "--client-cert", str(tls.cert_file), "--client-key")
        registry = state.services["registry"].grpc
        command = ("models", "list", "--registry", registry, "--token", tokens["alice"])
        listed = subprocess.run(
            [*cli, *tls_options, str(tls.key_file), *command],
            capture_output=True,
            text=True,
        )
        assert listed.returncode == 0 and MODEL in listed.stdout, listed.stdout + listed.stderr

        assert asyncio.run(refusal(registry, None)) == grpc.StatusCode.UNAVAILABLE
        assert asyncio.run(refusal(registry, ClientTls(tls.ca_file))) == grpc.StatusCode.UNAVAILABLE
