"""Fault injection (issue 17): one `modelyard up` process with the demo's settings, breast-cancer v1 approved and
served, then faults 1-5 and 7 of the issue inflicted on its processes in turn, each followed by the invariant that
must hold. The tests share the stack and run in file order; each leaves it healthy for the next.

Faults are signals to the processes `up` started (their pids are in up.json): SIGKILL for a crash, SIGSTOP/SIGCONT
for an outage (`up` restarts a killed process at once, so a dependency that stays away is a frozen one).
"""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from rich.console import Console

from modelyard.cli.demo import PRINCIPALS, demo_settings
from modelyard.cli.demo import prepare_work_dir as prepare_work
from modelyard.cli.demo_data import SEED, DemoData, load_data, train
from modelyard.cli.demo_scenario import MODEL, Scenario
from modelyard.cli.demo_timeline import Timeline
from modelyard.cli.stack import StackState
from modelyard.contracts.inference import grpc_service_pb2 as inference
from modelyard.contracts.inference import grpc_service_pb2_grpc as inference_grpc
from modelyard.contracts.registry.v1 import registry_service_pb2 as reg
from modelyard.events import topics
from modelyard.kafka.admin import repair_topics
from modelyard.testing.stack import Stack, modelyard

pytestmark = pytest.mark.fault

WAIT_S = 60.0  # for any one recovery; each ends as soon as its condition holds
FAULT_SETTINGS = (
    "serving.artifact_retry_max_s=1",  # a fetch that failed is tried again within a second
    "governance.alias_reconcile_interval_s=0.5",
)


@dataclass
class Faulty:
    stack: Stack
    work: Path
    tokens: dict[str, str]
    data: DemoData

    @property
    def state(self) -> StackState:
        state = StackState.load(self.stack.data_dir)
        assert state is not None, "up.json is gone: modelyard up stopped"
        return state

    def scenario(self) -> Scenario:
        return Scenario(self.state, self.work, self.tokens, Timeline(Console(file=io.StringIO())))

    async def traffic(self, phase: str, count: int) -> dict[str, int]:
        """`count` single-row inferences through stock tritonclient: answers by model version."""
        return await self.scenario().traffic(phase, self.rows(count))

    def rows(self, count: int) -> np.ndarray[Any, Any]:
        return self.data.traffic(count, SEED, shifted=False)

    async def infer(self, request_id: str = "") -> inference.ModelInferResponse:
        row = self.rows(1)[0].astype(np.float32)
        tensor = inference.ModelInferRequest.InferInputTensor(name="X", datatype="FP32", shape=[1, row.shape[0]])
        request = inference.ModelInferRequest(
            model_name=MODEL, id=request_id, inputs=[tensor], raw_input_contents=[row.tobytes()]
        )
        async with grpc.aio.insecure_channel(
            self.state.services["serving"].grpc, options=[("grpc.max_send_message_length", 8 << 20)]
        ) as channel:
            serving = inference_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
            response: inference.ModelInferResponse = await serving.ModelInfer(request, timeout=10)
        return response

    def records_seen(self) -> int:
        """Predictions of the model the monitor has counted."""
        answer = httpx.get(f"{self.state.services['monitor'].http}/api/v1/status", params={"model_name": MODEL})
        answer.raise_for_status()
        return sum(int(status["records_seen"]) for status in answer.json())

    def readyz(self, service: str) -> tuple[int, dict[str, Any]]:
        try:
            answer = httpx.get(f"{self.state.services[service].http}/readyz", timeout=5)
        except httpx.HTTPError:
            return 0, {}
        return answer.status_code, answer.json()

    def status_output(self) -> str:
        result = subprocess.run(
            [*modelyard("status", "--data-dir", str(self.stack.data_dir)), "--timeout", "5"],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "250"},
        )
        return result.stdout


def until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:g}s waiting for {what}"
        time.sleep(0.2)


async def _prepare(faulty: Faulty) -> None:
    """breast-cancer v1 registered, approved and loaded: the demo's own steps."""
    model = await asyncio.to_thread(train, faulty.data, 1.0)
    async with faulty.scenario().connected() as scenario:
        await scenario.serve(faulty.data, model, 1)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faulty]:
    data_dir = tmp_path_factory.mktemp("faults") / "stack"
    work = prepare_work(data_dir)
    tokens = {name: secrets.token_urlsafe(24) for name in PRINCIPALS}
    stack = Stack(data_dir, env=(*demo_settings(work, tokens), *FAULT_SETTINGS))
    try:
        stack.wait_healthy()
        faulty = Faulty(stack, work, tokens, load_data())
        asyncio.run(asyncio.wait_for(_prepare(faulty), 120))
        yield faulty
    finally:
        stack.stop()


async def test_7_a_broker_outage_leaves_serving_ready_and_answering_and_shows_as_degraded(faulty: Faulty) -> None:
    broker = faulty.state.broker.pid
    assert broker is not None
    os.kill(broker, signal.SIGSTOP)
    try:
        until(lambda: "kafka" in faulty.readyz("serving")[1].get("degraded", {}), "serving to report kafka degraded")
        code, _ = faulty.readyz("serving")
        assert code == 200
        assert (await faulty.infer()).model_version == "1"
        assert "degraded: kafka" in faulty.status_output()
        # Governance's consumers cannot verify their topics either: degraded (its readiness follows the broker).
        until(
            lambda: "audit-consumer" in faulty.readyz("governance")[1].get("degraded", {}),
            "governance to report its audit consumer degraded",
        )
    finally:
        os.kill(broker, signal.SIGCONT)
    until(lambda: faulty.readyz("serving")[1].get("degraded") == {}, "serving no longer degraded")


async def test_1_5_a_killed_broker_is_restarted_with_its_topics_and_predictions_reach_the_monitor_again(
    faulty: Faulty,
) -> None:
    until(lambda: faulty.records_seen() > 0, "the monitor to count predictions")  # test 7's inference
    before = faulty.records_seen()
    old = faulty.state.broker
    assert old.pid is not None
    os.kill(old.pid, signal.SIGKILL)
    until(lambda: faulty.state.broker.restarts == 1, "up to restart the broker")
    new = faulty.state.broker
    assert new.pid != old.pid and new.last_exit == -signal.SIGKILL
    # Every catalogue topic is back with its partitions (nothing left for a guard to repair).
    assert await repair_topics(new.bootstrap, topics.ALL) == []

    assert await faulty.traffic("after broker restart", 20) == {"1": 20}
    until(lambda: faulty.records_seen() >= before + 20, "the monitor to count the predictions sent after the restart")
    until(lambda: not faulty.readyz("monitor")[1].get("degraded"), "the monitor's consumer to recover")
    assert "1 (last exit code -9)" in faulty.status_output()


async def test_2_an_oversized_request_id_does_not_stop_the_prediction_stream(faulty: Faulty) -> None:
    before = faulty.records_seen()
    answer = await faulty.infer(request_id="x" * 1_100_000)
    assert answer.model_version == "1"
    assert await faulty.traffic("after an oversized id", 20) == {"1": 20}
    until(lambda: faulty.records_seen() >= before + 20, "the predictions after the oversized one to reach the monitor")


async def test_3_5_serving_killed_while_the_registry_is_away_is_restarted_unavailable_then_serves_on_its_own(
    faulty: Faulty,
) -> None:
    """Fault 5 (kill -9 of one service under `up`) and fault 3 (serving restarted while the registry is away)."""
    registry = faulty.state.services["registry"].pid
    old = faulty.state.services["serving"]
    os.kill(registry, signal.SIGSTOP)
    try:
        os.kill(old.pid, signal.SIGKILL)
        until(lambda: faulty.state.services["serving"].restarts == 1, "up to restart serving")
        new = faulty.state.services["serving"]
        assert new.pid != old.pid and new.last_exit == -signal.SIGKILL
        until(lambda: faulty.readyz("serving")[0] == 503, "the restarted serving to answer /readyz")
        until(
            lambda: "planned-models" in faulty.readyz("serving")[1].get("failing", {}),
            "serving to wait for its planned model",
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await faulty.infer()
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        os.kill(registry, signal.SIGCONT)
    # Nobody calls the load API: serving fetches the artifact again on its own.
    until(lambda: faulty.readyz("serving")[0] == 200, "serving to load its planned model once the registry is back")
    assert (await faulty.infer()).model_version == "1"
    assert "1 (last exit code -9)" in faulty.status_output().split("serving", 1)[1].splitlines()[0]


async def test_4_an_alias_that_diverged_from_governance_is_repaired(faulty: Faulty) -> None:
    async with faulty.scenario().connected() as scenario:
        as_governance = scenario.auth("governance")
        await scenario.registry.DeleteAlias(
            reg.DeleteAliasRequest(model_name=MODEL, alias="production"), metadata=as_governance
        )
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                resolved = await scenario.registry.ResolveAlias(
                    reg.ResolveAliasRequest(model_name=MODEL, alias="production"), metadata=scenario.auth("alice")
                )
                break
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
                assert time.monotonic() < deadline, "governance never put the production alias back"
                await asyncio.sleep(0.2)
    assert resolved.version.version == 1
