"""Test fixtures and helpers for the registry: registries on SQLite and PostgreSQL (which must run on CI), a
publishing principal, fresh model names, and upload helpers. Used by the registry's tests at every level."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelyard.auth import AuthSettings, Principal, Role, TokenGrant
from modelyard.contracts.events.v1 import registry_events_pb2 as ev
from modelyard.contracts.registry.v1 import registry_service_pb2 as pb
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as pb_grpc
from modelyard.registry.bootstrap import RegistryParts, build, service
from modelyard.registry.config import RegistrySettings
from modelyard.runtime import Service
from modelyard.sql.engine import scratch_postgres_database
from modelyard.testing.models import LABEL_COLUMN, TrainedModel

ALICE = Principal("alice", frozenset({Role.PUBLISHER, Role.APPROVER}))


@contextlib.contextmanager
def database_url(request: pytest.FixtureRequest, backend: str) -> Iterator[str]:
    """The database URL to test on: empty for the default SQLite file, else a fresh PostgreSQL database that is
    dropped afterwards."""
    if backend == "sqlite":
        yield ""
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    with scratch_postgres_database(admin_url, prefix="registry_test") as url:
        yield url.render_as_string(hide_password=False)


def registry_settings(tmp: Path, url: str = "", **overrides: Any) -> RegistrySettings:
    """Settings for a registry of its own under `tmp`, on free ports, not waiting for a broker to be ready."""
    return RegistrySettings(data_dir=tmp, database_url=url, grpc_port=0, http_port=0, kafka_required=False, **overrides)


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryParts]:
    """One registry per database for the session; tests keep apart by using fresh model names."""
    tmp = tmp_path_factory.mktemp(f"registry-{request.param}")
    with database_url(request, request.param) as url:
        built = build(registry_settings(tmp, url, max_artifact_bytes=4 * 1024 * 1024))
        yield built
        built.engine.dispose()


@pytest.fixture
def model_name() -> str:
    return f"model-{uuid.uuid4().hex[:10]}"


async def chunked(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RunningService:
    """A registry `Service` running on its own event loop in a background thread, for synchronous clients."""

    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        self.service: Service | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="registry-service", daemon=True)

    @property
    def grpc_address(self) -> str:
        assert self.service is not None
        return f"127.0.0.1:{self.service.grpc.port}"

    @property
    def http_url(self) -> str:
        assert self.service is not None
        return f"http://127.0.0.1:{self.service.http.port}"

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.service = service(build(self.settings))
            async with self.service.running():
                self._started.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._started.set()

    def __enter__(self) -> RunningService:
        self._thread.start()
        self._started.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


CHUNK = 64 * 1024


def upload(stub: pb_grpc.RegistryServiceStub, data: bytes, media_type: str, token: str) -> str:
    """Upload an artifact over gRPC (in chunks); its digest."""

    def requests() -> Iterator[pb.UploadArtifactRequest]:
        header = pb.UploadArtifactRequest.Header(media_type=media_type, digest=digest_of(data), size_bytes=len(data))
        yield pb.UploadArtifactRequest(header=header)
        for start in range(0, len(data), CHUNK):
            yield pb.UploadArtifactRequest(chunk=data[start : start + CHUNK])

    return str(stub.UploadArtifact(requests(), metadata=[("authorization", f"Bearer {token}")]).artifact.digest)


def register(
    stub: pb_grpc.RegistryServiceStub, model: TrainedModel, token: str, *, with_reference: bool = True
) -> tuple[str, int]:
    """A fresh registered model with one READY version of `model` (and its reference CSV), as a publisher."""
    auth = [("authorization", f"Bearer {token}")]
    name = f"m-{uuid.uuid4().hex[:10]}"
    stub.CreateRegisteredModel(pb.CreateRegisteredModelRequest(name=name), metadata=auth)
    request = pb.CreateModelVersionRequest(
        model_name=name, artifact_digest=upload(stub, model.onnx, "application/onnx", token)
    )
    if with_reference:
        request.reference_dataset_digest = upload(stub, model.reference_csv, "text/csv", token)
        request.label_column = LABEL_COLUMN
    version = stub.CreateModelVersion(request, metadata=auth).model_version.version
    deadline = time.monotonic() + 20
    get = pb.GetModelVersionRequest(model_name=name, version=version)
    while (status := stub.GetModelVersion(get, metadata=auth).model_version.status) != ev.MODEL_VERSION_STATUS_READY:
        assert status == ev.MODEL_VERSION_STATUS_PENDING_REGISTRATION and time.monotonic() < deadline
        time.sleep(0.05)
    return name, version


PUBLISHER_TOKEN, READER_TOKEN = "publisher-token-0123456789abcdef", "reader-token-0123456789abcdef"


def reading_registry(tmp: Path, kafka_bootstrap: str) -> RunningService:
    """A registry (not started: enter it) that alice publishes to with PUBLISHER_TOKEN and another service (the
    monitor, serving) reads from with READER_TOKEN (role viewer); no anonymous access."""
    auth = AuthSettings(
        tokens={
            PUBLISHER_TOKEN: TokenGrant(principal="alice", roles=frozenset({Role.PUBLISHER})),
            READER_TOKEN: TokenGrant(principal="reader", roles=frozenset({Role.VIEWER})),
        },
        allow_anonymous=False,
    )
    return RunningService(registry_settings(tmp, auth=auth, kafka_bootstrap=kafka_bootstrap, check_interval_s=0.05))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's standalone S3 server as a process of its own on a free loopback port; its endpoint URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


S3_KEYS = {"s3_access_key_id": "testing", "s3_secret_access_key": "testing"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url
