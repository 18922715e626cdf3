"""The registry's use cases, artifacts: upload (verified, inspected, deduplicated), download, garbage collection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta

from modelyard.auth import Principal
from modelyard.registry.domain.errors import (
    DataLoss,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from modelyard.registry.domain.model import (
    Artifact,
    ArtifactKind,
    GarbageReport,
    MediaType,
    validate_digest,
)
from modelyard.registry.domain.ports import (
    StagedArtifact,
)
from modelyard.registry.handlers.base import (
    ADMINISTER,
    PUBLISH,
    READ,
    UseCases,
    log,
)


class ArtifactUseCases(UseCases):
    async def upload_artifact(
        self,
        principal: Principal,
        media_type: str,
        declared_digest: str,
        declared_size: int,
        chunks: AsyncIterable[bytes],
    ) -> Artifact:
        """Receive, verify, inspect and store an artifact. Nothing of it stays if any step refuses it, the
        client gives up half way, or the call is cancelled: the staged file is removed on the way out."""
        principal.require("upload artifacts", PUBLISH)
        media = MediaType.parse(media_type)
        if not declared_digest:
            raise InvalidArgument("the artifact's sha256 digest must be declared before its bytes")
        validate_digest(declared_digest)
        limit = self.policy.max_artifact_bytes
        if declared_size > limit:
            raise ResourceExhausted(f"artifact of {declared_size} bytes is larger than the limit of {limit} bytes")
        with self._artifacts.stage(limit) as staged:
            async for chunk in chunks:
                await asyncio.to_thread(staged.write, chunk)
            digest = await asyncio.to_thread(staged.finish)
            if digest != declared_digest:
                raise DataLoss(f"received bytes have digest {digest}, not the declared {declared_digest}: not stored")
            if declared_size and declared_size != staged.size_bytes:
                raise DataLoss(f"received {staged.size_bytes} bytes, not the declared {declared_size}: not stored")
            return await asyncio.to_thread(self._ingest, principal, media, staged)

    def _ingest(self, principal: Principal, media: MediaType, staged: StagedArtifact) -> Artifact:
        with self._store.transaction() as tx:
            known = tx.get_artifact(staged.digest)
        if known is not None:
            if known.media_type is not media:
                raise InvalidArgument(f"these bytes are already stored as {known.media_type.value}, not {media.value}")
            self._artifacts.commit(staged)  # same bytes, already inspected: deduplicated
            return known
        artifact = Artifact(
            digest=staged.digest,
            size_bytes=staged.size_bytes,
            media_type=media,
            created_by=principal.name,
            created_at=self._now(),
        )
        if media.kind is ArtifactKind.ONNX_MODEL:
            artifact = replace(artifact, signature=self._inspector.inspect_model(staged.path, media, staged.size_bytes))
        else:
            artifact = replace(artifact, dataset=self._inspector.inspect_dataset(staged.path, media))
        # Bytes first, row second: a crash in between leaves an unreferenced blob, never a row without bytes.
        self._artifacts.commit(staged)
        with self._store.transaction(write=True) as tx:
            tx.add_artifact(artifact)
            stored = tx.get_artifact(artifact.digest)
        assert stored is not None
        return stored

    def open_artifact(self, principal: Principal, digest: str) -> tuple[Artifact, Iterator[bytes]]:
        """The artifact's record and its bytes in chunks, verified while read (DataLoss at the end if rotten)."""
        principal.require("download artifacts", READ)
        validate_digest(digest)
        with self._store.transaction() as tx:
            artifact = tx.get_artifact(digest)
        if artifact is None:
            raise NotFound(f"artifact {digest} not found")
        return artifact, self._artifacts.read(digest, self.policy.download_chunk_bytes)

    def collect_garbage(self, principal: Principal, *, delete: bool) -> GarbageReport:
        """The stored blobs no version names (bytes whose registration never came, or a blob left by a crash
        between storing bytes and their row) older than the grace period; deleted with their rows when `delete`,
        else only listed. Younger ones are spared: an upload stores bytes before the version that names them."""
        principal.require("collect garbage", ADMINISTER)
        cutoff = self._now() - timedelta(seconds=self.policy.gc_grace_s)
        with self._store.transaction() as tx:
            referenced = tx.referenced_digests()
        unreferenced = [blob for blob in self._artifacts.blobs() if blob.digest not in referenced]
        old = sorted((blob for blob in unreferenced if blob.modified_at < cutoff), key=lambda blob: blob.digest)
        if delete:
            old = [blob for blob in old if self._delete_unreferenced(blob.digest, cutoff)]
            log.info("garbage collection deleted %d blobs (%d bytes)", len(old), sum(b.size_bytes for b in old))
        young = sum(1 for blob in unreferenced if blob.modified_at >= cutoff)
        return GarbageReport(tuple(old), deleted=delete, young_blobs=young, grace_s=self.policy.gc_grace_s)

    def _delete_unreferenced(self, digest: str, cutoff: datetime) -> bool:
        """Delete one blob and its row, checked again under the row's lock: a version registered since the scan,
        or an upload of the same bytes (which makes the blob young again), keeps it. False when kept."""
        with self._store.transaction(write=True) as tx:
            tx.lock_artifact(digest)
            blob = self._artifacts.stored_blob(digest)
            if blob is None or blob.modified_at >= cutoff or digest in tx.referenced_digests():
                return False
            tx.delete_artifact(digest)
            # The bytes go while the row is still locked: nothing can name them meanwhile. Should the commit fail
            # afterwards, an unreferenced row is left without bytes, and the next upload of them stores them again.
            self._artifacts.delete(digest)
        return True
