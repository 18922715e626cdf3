"""Every worked example in README.md and docs/*.md, run against a real stack.

An example is a fenced block whose info string is ```bash title="example:NAME"``` or ```python title="example:NAME"```,
with one or more `# expect: FRAGMENT` lines: the block must exit 0 and print every fragment. The stack is started
once for the module (`running_stack`, on free ports) with the demo's settings and bearer tokens, and holds what the
demo's first half leaves: breast-cancer v1 registered, approved (the `production` alias), loaded by serving and seen
by the monitor; v2 registered with its promotion pending. Examples find it through environment variables
($REGISTRY_HTTP, $SERVING_GRPC, $TOKEN, ...; see `example_env`).
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import httpx
import pytest
from rich.console import Console

from modelyard.cli.demo import PRINCIPALS, demo_settings, prepare_work_dir
from modelyard.cli.demo_data import SEED, load_data, train
from modelyard.cli.demo_scenario import MODEL, Scenario
from modelyard.cli.demo_timeline import EventLog, Timeline
from modelyard.cli.stack import SERVICES, StackState, trusted_keys
from modelyard.cli.up import StackOptions, running_stack
from modelyard.kafka.embedded import free_port

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
REPO = DOC.parents[1]
DOCUMENTS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
FENCE = re.compile(r'^```(bash|python) title="example:([\w.-]+)"\n(.*?)^```$', re.MULTILINE | re.DOTALL)
EXPECT = re.compile(r"^\s*# expect: (.+?)\s*$", re.MULTILINE)
EXAMPLE_TIMEOUT_S = 60.0
SETUP_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class Example:
    language: str
    name: str
    code: str

    @property
    def expected(self) -> list[str]:
        return EXPECT.findall(self.code)


def examples() -> list[Example]:
    return [
        Example(language, name, code)
        for document in DOCUMENTS
        for language, name, code in FENCE.findall(document.read_text())
    ]


def free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


async def _prepare(state: StackState, work: Path, tokens: dict[str, str]) -> None:
    """The demo's own steps, up to serving v1 with v2's promotion pending (the Scenario's methods, not copies)."""
    from modelyard.contracts.governance.v1 import governance_service_pb2_grpc as gov_grpc
    from modelyard.contracts.inference import grpc_service_pb2_grpc as inference_grpc
    from modelyard.contracts.registry.v1 import registry_service_pb2 as reg
    from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as reg_grpc

    timeline = Timeline(Console(file=io.StringIO()))
    scenario = Scenario(state, work, tokens, timeline)
    services = state.services
    data = await asyncio.to_thread(load_data)
    v1, v2 = await asyncio.to_thread(lambda: (train(data, 1.0), train(data, 0.05)))
    async with (
        EventLog(state.broker.bootstrap, timeline, trusted_keys(state.data_dir)).running() as scenario.log,
        grpc.aio.insecure_channel(services["registry"].grpc) as registry,
        grpc.aio.insecure_channel(services["governance"].grpc) as governance,
        grpc.aio.insecure_channel(services["serving"].grpc) as serving,
    ):
        scenario.registry = reg_grpc.RegistryServiceStub(registry)  # type: ignore[no-untyped-call]
        scenario.governance = gov_grpc.GovernanceServiceStub(governance)  # type: ignore[no-untyped-call]
        scenario.serving = inference_grpc.GRPCInferenceServiceStub(serving)  # type: ignore[no-untyped-call]
        await scenario.register(data, v1, expected_version=1)
        request_id = await scenario.request_promotion(1)
        await scenario.checks_passed(request_id)
        await scenario.approve(request_id, canary=None)
        await scenario.loaded(1)
        await scenario.traffic("docs", data.traffic(50, SEED, shifted=False))
        # Governance moves the alias after its decision commits: wait until the registry says so.
        resolve = reg.ResolveAliasRequest(model_name=MODEL, alias="production")
        while True:
            try:
                await scenario.registry.ResolveAlias(resolve, metadata=scenario.auth("alice"))
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                await asyncio.sleep(0.2)
        await scenario.register(data, v2, expected_version=2)
        await scenario.request_promotion(2)  # left pending: nobody approves it
    # The monitor has seen v1's predictions once they are in its status (nothing to await but polling).
    async with httpx.AsyncClient(base_url=services["monitor"].http) as client:
        while not (await client.get("/api/v1/status", params={"model_name": MODEL})).json():  # noqa: ASYNC110
            await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
def example_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    ports = free_ports(1 + 2 * len(SERVICES))
    options = StackOptions(
        data_dir=tmp_path_factory.mktemp("docs") / "stack",
        broker_port=ports.pop(),
        ports=tuple(f"{service}.{kind}={ports.pop()}" for service in SERVICES for kind in ("grpc", "http")),
        timeout=180.0,
    )
    work = prepare_work_dir(options.data_dir)
    tokens = {name: secrets.token_urlsafe(24) for name in PRINCIPALS}
    options = replace(options, env=(*demo_settings(work, tokens), *options.env))
    started = time.monotonic()
    with running_stack(options) as stack:
        asyncio.run(asyncio.wait_for(_prepare(stack.state, work, tokens), SETUP_TIMEOUT_S))
        print(f"stack ready and prepared in {time.monotonic() - started:.1f}s")
        env = {**os.environ, "TOKEN": tokens["alice"], "APPROVER_TOKEN": tokens["carol"]}
        if "UV" in os.environ:  # `uv run` names its binary: the examples' `uv run` works where uv is not on PATH
            env["PATH"] = f"{Path(os.environ['UV']).parent}{os.pathsep}{env.get('PATH', '')}"
        for service, record in stack.state.services.items():
            env[f"{service.upper()}_GRPC"] = record.grpc
            env[f"{service.upper()}_HTTP"] = record.http
        yield env


def test_the_api_doc_has_examples_and_each_states_what_it_prints() -> None:
    found = examples()
    assert len(found) >= 8, f"docs/api.md has {len(found)} tagged examples"
    assert len({e.name for e in found}) == len(found), "example names must be unique"
    for example in found:
        assert example.expected, f"example {example.name} has no `# expect:` line"
    assert {"bash", "python"} <= {e.language for e in found}


@pytest.mark.timeout(SETUP_TIMEOUT_S + 240)  # the first one also starts and prepares the stack
@pytest.mark.parametrize("example", examples(), ids=lambda e: e.name)
def test_example(example: Example, example_env: dict[str, str]) -> None:
    if example.language == "bash":
        assert shutil.which("curl"), "the examples need curl (`apt-get install curl`)"
        argv = ["bash", "-c", "set -euo pipefail\n" + example.code]
        stdin = None
    else:
        argv = ["uv", "run", "python", "-"] if shutil.which("uv") else ["python", "-"]
        stdin = example.code
    result = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, env=example_env, cwd=REPO, timeout=EXAMPLE_TIMEOUT_S
    )
    shown = f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"example {example.name} exited with {result.returncode}\n{shown}"
    for fragment in example.expected:
        assert fragment in result.stdout, f"example {example.name} did not print {fragment!r}\n{shown}"


def test_example_environment_names_every_service(example_env: dict[str, str]) -> None:
    # What the doc's setup block exports by hand: keep the two in step.
    names = {f"{s.upper()}_{kind}" for s in SERVICES for kind in ("GRPC", "HTTP")} | {"TOKEN", "APPROVER_TOKEN"}
    doc = DOC.read_text()
    assert names <= set(example_env)
    for name in names:
        assert f"export {name}=" in doc, name
