"""Artifact sources: the registry over gRPC, and a local model directory (the stand-in without a registry)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from modelyard.contracts.registry.v1 import registry_service_pb2 as registry_pb
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as registry_grpc
from modelyard.serving.domain.errors import ArtifactError
from modelyard.serving.domain.model import VersionRef
from modelyard.tls import ClientTls, grpc_aio_channel

# Statuses after which asking again later may succeed; anything else is the registry's final answer.
TRANSIENT_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED, grpc.StatusCode.UNKNOWN}
)


class RegistryArtifacts:
    """Streams an artifact by digest from `modelyard.registry.v1.RegistryService/DownloadArtifact`."""

    def __init__(
        self, address: str, token: str | None = None, timeout_s: float = 300.0, tls: ClientTls | None = None
    ) -> None:
        self.address = address
        self.tls = tls
        self.timeout_s = timeout_s
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._channel: grpc.aio.Channel | None = None

    def stub(self) -> registry_grpc.RegistryServiceStub:
        """A stub on the one channel to the registry (explanations' reference datasets share it)."""
        if self._channel is None:  # created on first use, on the loop that uses it
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
