"""Reference datasets for explanations' background samples: from the registry, or next to a local model.

The registry keeps each version's reference dataset (CSV or Parquet, by `reference_dataset_digest`) and the feature
names of its inputs; serving asks for them as the monitor does for its profiles, verifies the download's digest,
and keeps a bounded random sample (`sample_rows`, seeded) per version. Without a registry, the dataset is
`<model_dir>/<model>/<version>/reference.parquet` (or `.csv`), its columns named by feature location (`X[3]`).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from modelyard.contracts.registry.v1 import registry_service_pb2 as registry_pb
from modelyard.peers import TRANSIENT_CODES
from modelyard.serving.adapters.artifacts import RegistryArtifacts
from modelyard.serving.domain.errors import Unavailable
from modelyard.serving.domain.explanation import NoReference, Reference
from modelyard.serving.domain.model import VersionRef
from modelyard.serving.domain.tensors import Array

PARQUET = "application/vnd.apache.parquet"
SEED = 0


def read_table(data: bytes, parquet: bool, what: str) -> dict[str, Array]:
    """Columns of a CSV or Parquet dataset: numbers as float64, anything else as str."""
    try:
        table = pq.read_table(io.BytesIO(data)) if parquet else pa_csv.read_csv(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise NoReference(f"the reference dataset of {what} cannot be read: {exc}") from exc
    columns: dict[str, Array] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
            columns[name] = column.cast(pa.float64()).fill_null(np.nan).to_numpy()
        else:
            columns[name] = np.asarray(column.cast(pa.string()).fill_null("").to_pylist(), dtype=object)
    return columns


def sample(columns: Mapping[str, Array], rows: int) -> dict[str, Array]:
    """At most `rows` rows, drawn without replacement with a fixed seed (the same background every time)."""
    count = len(next(iter(columns.values()), ()))
    if count == 0:
        return {}
    if count <= rows:
        return dict(columns)
    keep = np.sort(np.random.default_rng(SEED).choice(count, rows, replace=False))
    return {name: values[keep] for name, values in columns.items()}


class ReferenceLoader(Protocol):
    async def load(self, ref: VersionRef) -> Reference: ...

    async def close(self) -> None: ...


class CachedReferences:
    """The `ReferenceSource`: one sampled Reference per version, loaded once (concurrent callers share the load)."""

    def __init__(self, loader: ReferenceLoader, sample_rows: int) -> None:
        self.loader = loader
        self.sample_rows = sample_rows
        self._cache: dict[VersionRef, Reference] = {}
        self._locks: dict[VersionRef, asyncio.Lock] = {}

    async def fetch(self, ref: VersionRef) -> Reference:
        async with self._locks.setdefault(ref, asyncio.Lock()):
            cached = self._cache.get(ref)
            if cached is None:
                cached = await self.loader.load(ref)
                cached = Reference(sample(cached.columns, self.sample_rows), cached.feature_names, cached.source)
                if not cached.columns:
                    raise NoReference(f"the reference dataset of {ref} has no rows")
                self._cache[ref] = cached
            return cached

    async def close(self) -> None:
        self._cache.clear()
        await self.loader.close()


class LocalReferences:
    def __init__(self, root: Path) -> None:
        self.root = root

    async def close(self) -> None:
        pass

    async def load(self, ref: VersionRef) -> Reference:
        directory = self.root / ref.model / str(ref.version)
        for name, parquet in (("reference.parquet", True), ("reference.csv", False)):
            path = directory / name
            if path.is_file():
                data = await asyncio.to_thread(path.read_bytes)
                columns = await asyncio.to_thread(read_table, data, parquet, str(ref))
                return Reference(columns, {}, f"file:{ref.model}/{ref.version}/{name}")
        raise NoReference(f"{ref} has no reference dataset to draw a background sample from")


class RegistryReferences:
    """GetModelVersion (feature names, reference digest) and DownloadArtifact of `modelyard.registry.v1`, on the
    channel (and with the token) serving fetches its artifacts with."""

    def __init__(self, registry: RegistryArtifacts) -> None:
        self.registry = registry

    async def close(self) -> None:
        """Nothing to release: the channel is the artifact source's, closed with it."""

    async def load(self, ref: VersionRef) -> Reference:
        stub, metadata, timeout = self.registry.stub(), self.registry.metadata, self.registry.timeout_s
        try:
            version = (
                await stub.GetModelVersion(
                    registry_pb.GetModelVersionRequest(model_name=ref.model, version=ref.version),
                    metadata=metadata,
                    timeout=timeout,
                )
            ).model_version
            digest = version.reference_dataset_digest
            if not digest:
                raise NoReference(f"{ref} has no reference dataset in the registry")
            chunks: list[bytes] = []
            media_type = ""
            async for response in stub.DownloadArtifact(
                registry_pb.DownloadArtifactRequest(digest=digest), metadata=metadata, timeout=timeout
            ):
                media_type = response.artifact.media_type or media_type
                chunks.append(response.chunk)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, ref) from exc
        data = b"".join(chunks)
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise Unavailable(f"the reference dataset of {ref} does not match its digest")
        columns = await asyncio.to_thread(read_table, data, media_type == PARQUET, str(ref))
        names: dict[str, Sequence[str]] = {spec.name: list(spec.feature_names) for spec in version.signature.inputs}
        return Reference(columns, names, f"registry:{digest}")

    def _error(self, exc: grpc.aio.AioRpcError, ref: VersionRef) -> Exception:
        message = f"registry: {exc.code().name} for the reference dataset of {ref}"
        if exc.code() in TRANSIENT_CODES:
            return Unavailable(message)
        return NoReference(f"{message}: {exc.details()}")
