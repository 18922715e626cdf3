"""Artifact sources: the registry over gRPC, and a local model directory (the stand-in without a registry)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from modelyard.contracts.registry.v1 import registry_service_pb2 as registry_pb
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as registry_grpc
from modelyard.peers import TRANSIENT_CODES, PeerClient
from modelyard.serving.domain.errors import ArtifactError
from modelyard.serving.domain.model import VersionRef
from modelyard.tls import grpc_aio_channel


class RegistryArtifacts(PeerClient):
    """Streams an artifact by digest from `modelyard.registry.v1.RegistryService/DownloadArtifact`."""

    _channel: grpc.aio.Channel | None = None  # created on first use, on the loop that uses it

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata that presents this client's token (explanations' reference downloads share it)."""
        return self._metadata

    def stub(self) -> registry_grpc.RegistryServiceStub:
        """A stub on the one channel to the registry (explanations' reference datasets share it)."""
        if self._channel is None:
            self._channel = grpc_aio_channel(self.address, self.tls)
        return registry_grpc.RegistryServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def fetch(self, ref: VersionRef) -> bytes:
        """Raises ConnectionError when the registry may answer later, ArtifactError when it refuses."""
        chunks: list[bytes] = []
        request = registry_pb.DownloadArtifactRequest(digest=ref.digest)
        try:
            async for response in self.stub().DownloadArtifact(request, metadata=self.metadata, timeout=self.timeout_s):
                chunks.append(response.chunk)
        except grpc.aio.AioRpcError as exc:
            message = f"registry {self.address}: {exc.code().name} for {ref.digest}: {exc.details()}"
            if exc.code() in TRANSIENT_CODES:
                raise ConnectionError(message) from exc
            raise ArtifactError(message) from exc
        return b"".join(chunks)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


class LocalArtifacts:
    """`<root>/<model>/<version>/model.onnx`, the layout of a Triton model repository."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, ref: VersionRef) -> Path:
        return self.root / ref.model / str(ref.version) / "model.onnx"

    async def fetch(self, ref: VersionRef) -> bytes:
        return await asyncio.to_thread(self.path(ref).read_bytes)

    async def close(self) -> None:
        pass
