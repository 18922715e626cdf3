"""What the registry's use cases need from the outside world; adapters implement these."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from modelyard.registry.domain.model import DatasetSchema, MediaType, Signature, StoredBlob


class StagedArtifact(Protocol):
    """Bytes being received: a private local file, hashed and counted as it is written, invisible to readers."""

    @property
    def path(self) -> Path: ...

    @property
    def size_bytes(self) -> int: ...

    @property
    def digest(self) -> str: ...

    def write(self, chunk: bytes) -> None:
        """Append a chunk; raises ResourceExhausted past the size limit."""

    def finish(self) -> str:
        """Flush to stable storage and return the "sha256:<hex>" digest of everything written."""


class ArtifactStore(Protocol):
    """Content-addressed artifact storage: an artifact's name is the sha256 of its bytes."""

    def stage(self, max_bytes: int) -> AbstractContextManager[StagedArtifact]:
        """A staged artifact that is removed on exit unless it was committed."""

    def commit(self, staged: StagedArtifact) -> None:
        """Make finished staged bytes visible under their digest, atomically; a no-op if already stored."""

    def exists(self, digest: str) -> bool: ...

    def size(self, digest: str) -> int:
        """Stored size in bytes; raises NotFound."""

    def read(self, digest: str, chunk_size: int) -> Iterator[bytes]:
        """The artifact's bytes in chunks, verified against the digest as they go: DataLoss at the end if not."""

    def blobs(self) -> Iterator[StoredBlob]:
        """Every stored blob (not staged uploads), for garbage collection."""

    def stored_blob(self, digest: str) -> StoredBlob | None:
        """The blob's size and age now, or None when it is not stored."""

    def delete(self, digest: str) -> None:
        """Remove a stored blob (a no-op when it is already gone)."""


class ArtifactInspector(Protocol):
    """Safe ingestion of untrusted files: checks that the bytes are what their media type says."""

    def inspect_model(self, path: Path, media_type: MediaType, max_bytes: int) -> Signature:
        """The signature of a valid ONNX model (or bundle); InvalidArgument otherwise."""

    def inspect_dataset(self, path: Path, media_type: MediaType) -> DatasetSchema:
        """Columns and row count of a valid CSV or Parquet file; InvalidArgument otherwise."""
