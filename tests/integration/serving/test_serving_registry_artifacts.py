"""Fetching artifacts from the registry's gRPC API (a stand-in RegistryService speaking the real contract)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import grpc
import pytest

from modelyard.contracts.registry.v1 import registry_service_pb2 as registry_pb
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as registry_grpc
from modelyard.serving.adapters.artifacts import RegistryArtifacts
from modelyard.serving.domain.errors import ArtifactError
from modelyard.serving.domain.model import VersionRef

pytestmark = pytest.mark.integration

ARTIFACT = bytes(range(256)) * 1000


class Registry(registry_grpc.RegistryServiceServicer):  # type: ignore[misc]
    """Serves one artifact by digest, in chunks, to callers with the right token."""

    async def DownloadArtifact(
        self, request: registry_pb.DownloadArtifactRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[registry_pb.DownloadArtifactResponse]:
        if ("authorization", "Bearer s3cret") not in context.invocation_metadata():
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no token")
        if request.digest != "sha256:" + hashlib.sha256(ARTIFACT).hexdigest():
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no artifact {request.digest}")
        for start in range(0, len(ARTIFACT), 65536):
            yield registry_pb.DownloadArtifactResponse(chunk=ARTIFACT[start : start + 65536])


@pytest.fixture
async def registry_address() -> AsyncIterator[str]:
    server = grpc.aio.server()
    registry_grpc.add_RegistryServiceServicer_to_server(Registry(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def test_fetches_by_digest_and_classifies_failures(registry_address: str) -> None:
    digest = "sha256:" + hashlib.sha256(ARTIFACT).hexdigest()
    artifacts = RegistryArtifacts(registry_address, token="s3cret")
    try:
        assert await artifacts.fetch(VersionRef("m", 1, digest)) == ARTIFACT
        with pytest.raises(ArtifactError, match="NOT_FOUND"):
            await artifacts.fetch(VersionRef("m", 2, "sha256:00"))
    finally:
        await artifacts.close()
    anonymous = RegistryArtifacts(registry_address)
    with pytest.raises(ArtifactError, match="UNAUTHENTICATED"):
        await anonymous.fetch(VersionRef("m", 1, digest))
    await anonymous.close()
    gone = RegistryArtifacts("127.0.0.1:1", timeout_s=5)
    with pytest.raises(ConnectionError, match="UNAVAILABLE"):
        await gone.fetch(VersionRef("m", 1, digest))
    await gone.close()
