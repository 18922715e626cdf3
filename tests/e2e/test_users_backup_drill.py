"""`modelyard up --users` and the backup drill of issue 17, on SQLite and on PostgreSQL, as a person runs them:
alice registers and asks for production, alice may not approve, bob and carol do; a backup of the running stack
verifies (and a tampered copy does not); restored onto an empty data dir (and empty databases), `up` serves the
same approved version, the audit chain verifies, and the users keep their tokens."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import pytest

from modelyard.contracts.governance.v1 import governance_service_pb2 as gov
from modelyard.contracts.governance.v1 import governance_service_pb2_grpc as gov_grpc
from modelyard.contracts.inference import grpc_service_pb2 as inference
from modelyard.contracts.inference import grpc_service_pb2_grpc as inference_grpc
from modelyard.contracts.registry.v1 import registry_service_pb2 as reg
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as reg_grpc
from modelyard.sql.engine import scratch_postgres_database
from modelyard.testing.models import LABEL_COLUMN, TrainedModel
from modelyard.testing.stack import Stack, modelyard

pytestmark = pytest.mark.e2e

T = TypeVar("T")
USERS = "alice:publisher,bob:approver,carol:approver"
DEADLINE_S = 90.0
DATABASE_SERVICES = ("registry", "governance", "monitor")
Databases = dict[str, str]  # service -> URL; empty for SQLite in the data dir


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def databases(request: pytest.FixtureRequest) -> Iterator[tuple[Databases, Databases]]:
    """The services' databases before and after the restore: fresh PostgreSQL ones, dropped afterwards."""
    if request.param == "sqlite":
        yield {}, {}
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    with contextlib.ExitStack() as scratch:

        def fresh(service: str) -> str:
            url = scratch.enter_context(scratch_postgres_database(admin_url, f"drill_{service}"))
            return url.render_as_string(hide_password=False)

        before, after = ({service: fresh(service) for service in DATABASE_SERVICES} for _ in range(2))
        yield before, after


def database_options(urls: Databases, option: str) -> list[str]:
    """`up` takes them as --env SERVICE.database_url=URL, `backup` as --database SERVICE=URL."""
    if option == "--env":
        return [arg for service, url in urls.items() for arg in ("--env", f"{service}.database_url={url}")]
    return [arg for service, url in urls.items() for arg in ("--database", f"{service}={url}")]


@pytest.fixture
def stacks() -> Iterator[list[Stack]]:
    started: list[Stack] = []
    yield started
    for stack in started:
        stack.stop()


def cli(data_dir: Path, user: str, *args: str, ok: bool = True) -> str:
    result = subprocess.run(
        modelyard("--users-file", str(data_dir / "users.json"), "--as", user, *args),
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert (result.returncode == 0) is ok, f"{args}: {result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def eventually(probe: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + DEADLINE_S
    while (found := probe()) is None:
        assert time.monotonic() < deadline, f"not within {DEADLINE_S}s: {what}"
        time.sleep(0.3)
    return found


def addresses(state: dict[str, object]) -> dict[str, str]:
    services = state["services"]
    assert isinstance(services, dict)
    return {name: record["grpc"] for name, record in services.items()}


def production_version(registry: str, token: str) -> int | None:
    with grpc.insecure_channel(registry) as channel:
        stub = reg_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            answer = stub.ResolveAlias(
                reg.ResolveAliasRequest(model_name="iris", alias="production"),
                metadata=[("authorization", f"Bearer {token}")],
            )
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
            return None
    return int(answer.model_version.version)


def served(serving: str) -> bool | None:
    with grpc.insecure_channel(serving) as channel:
        stub = inference_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            ready = stub.ModelReady(inference.ModelReadyRequest(name="iris", version="1"), timeout=5).ready
        except grpc.RpcError:
            return None
    return True if ready else None


@pytest.mark.timeout(600)
def test_users_approve_then_a_backup_restores_a_stack_serving_the_same(
    databases: tuple[Databases, Databases], stacks: list[Stack], onnx_models: dict[str, TrainedModel], tmp_path: Path
) -> None:  # the databases first: dropped after the stacks that use them have stopped
    before, after = databases
    kind = "postgresql" if before else "sqlite"
    data = tmp_path / "data"
    stacks.append(stack := Stack(data, "--users", USERS, *database_options(before, "--env")))
    services = addresses(stack.wait_healthy())
    users = json.loads((data / "users.json").read_text())["users"]
    assert (data / "users.json").stat().st_mode & 0o777 == 0o600
    assert set(users) == {"alice", "bob", "carol"}

    model = onnx_models["iris"]
    reference = tmp_path / "iris.csv"
    reference.write_bytes(model.reference_csv)
    registered = cli(data, "alice", "models", "register", "iris", str(model.write(tmp_path)),
                     "--reference-dataset", str(reference), "--label-column", LABEL_COLUMN,
                     "--registry", services["registry"])  # fmt: skip
    assert "registered iris version 1" in registered
    promoted = cli(data, "alice", "promote", "iris", "--version", "1", "--governance", services["governance"])
    match = re.search(r"request (\S+):", promoted)
    assert match, promoted
    request_id = match.group(1)

    def awaiting_approval() -> bool | None:
        with grpc.insecure_channel(services["governance"]) as channel:
            stub = gov_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
            found = stub.GetDecision(
                gov.GetDecisionRequest(request_id=request_id),
                metadata=[("authorization", f"Bearer {users['bob']['token']}")],
            ).request
        assert found.state in ("checking", "awaiting_approval"), found
        return True if found.state == "awaiting_approval" else None

    eventually(awaiting_approval, "the promotion's checks")
    refused = cli(data, "alice", "approve", request_id, "--governance", services["governance"], ok=False)
    assert "PERMISSION_DENIED" in refused
    assert "1/2 approvals" in cli(data, "bob", "approve", request_id, "--governance", services["governance"])
    cli(data, "carol", "approve", request_id, "--governance", services["governance"])
    eventually(lambda: production_version(services["registry"], users["bob"]["token"]), "production -> v1")
    eventually(lambda: served(services["serving"]), "serving loads v1")

    archive = tmp_path / "backup.tar.gz"
    started = time.monotonic()
    created = cli(data, "bob", "backup", "create", str(archive), "--data-dir", str(data),
                  *database_options(before, "--database"))  # fmt: skip
    backup_s = time.monotonic() - started
    assert "3 databases, 2 artifacts, 1 audit exports" in created, created
    verified = cli(data, "bob", "backup", "verify", str(archive))
    assert "backup intact" in verified and f"registry {kind} at 0003" in verified
    stack.stop()

    tampered = tmp_path / "tampered.tar"
    with tarfile.open(archive) as source, tarfile.open(tampered, "w") as target:
        for info in source:
            content = source.extractfile(info)
            assert content is not None
            payload = content.read()
            if info.name.startswith("audit/"):
                payload = payload.replace(b'"iris"', b'"ir1s"', 1)
            target.addfile(info, io.BytesIO(payload))
    assert "audit/iris.jsonl does not match its digest" in cli(data, "bob", "backup", "verify", str(tampered), ok=False)

    restored = tmp_path / "restored"
    assert "is not empty" in cli(data, "bob", "backup", "restore", str(archive), "--data-dir", str(data), ok=False)
    cli(data, "bob", "backup", "restore", str(archive), "--data-dir", str(restored),
        *database_options(after, "--database"))  # fmt: skip
    stacks.append(again := Stack(restored, "--users", USERS, *database_options(after, "--env")))
    services = addresses(again.wait_healthy())
    assert json.loads((restored / "users.json").read_text())["users"] == users  # same tokens after `up` again
    assert production_version(services["registry"], users["bob"]["token"]) == 1
    eventually(lambda: served(services["serving"]), "serving loads v1 after the restore")
    audit = cli(restored, "bob", "audit", "verify", "--governance", services["governance"])
    assert "audit trail intact" in audit
    print(f"{kind}: backup create took {backup_s:.1f}s; archive {archive.stat().st_size} bytes")
