"""The artifact store on S3 (or any S3-compatible server): content-addressed objects under a bucket prefix.

Layout: `<prefix>/sha256/<first two hex>/<hex>`, and `<prefix>/staging/` for uploads in progress. Artifacts an
inspector must read (models and datasets) are staged in a local file first, then sent under their digest; files of
runs and logged models are streamed to S3 as they arrive (`s3_streaming`). Either way the bytes go as a multipart
upload with parts sent in parallel (a bounded number in memory at a time), each part carrying its SHA-256 for the
server to check. An upload that fails or is cut off half way is aborted: an incomplete multipart upload is never an
object, so nothing is visible under the digest. The object's own metadata names its digest and every read re-hashes
the bytes (DataLoss at the end when they do not match).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import boto3  # type: ignore[import-untyped]
from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from modelyard.registry.adapters.artifacts import LocalArtifactStore, LocalStagedArtifact
from modelyard.registry.adapters.s3_streaming import S3StreamedArtifact, sha256_base64
from modelyard.registry.domain.errors import DataLoss, InvalidArgument, NotFound
from modelyard.registry.domain.model import StoredBlob, validate_digest
from modelyard.registry.domain.ports import IncomingArtifact

log = logging.getLogger(__name__)
PART_BYTES = 5 * 1024 * 1024  # S3's smallest part (but the last): the least memory an upload holds
PARTS_IN_FLIGHT = 3  # per upload: what it holds in memory is about (this + 1) parts
COPY = TransferConfig(multipart_threshold=5 * 1024**3, multipart_chunksize=512 * 1024**2)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """`s3://bucket/some/prefix` -> (bucket, "some/prefix")."""
        if not url.startswith("s3://"):
            raise ValueError(f"not an s3:// URL: {url!r}")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {url!r}")
        return cls(bucket, prefix.strip("/"))


def s3_client(endpoint_url: str, region: str, access_key_id: str, secret_access_key: str) -> Any:
    """A boto3 S3 client; without keys, boto3's own chain finds them (environment, web identity, instance role)."""
    keys = {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key} if access_key_id else {}
    # Checksums: the store sends each part's SHA-256 itself and re-hashes every read against the digest, so
    # botocore's own defaults are off (its response check also misreads some servers' multipart checksums).
    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region, config=config, **keys)


class S3ArtifactStore:
    def __init__(self, client: Any, location: S3Location, staging_root: Path, part_bytes: int = PART_BYTES) -> None:
        """`client` is a boto3 S3 client (thread-safe); staged uploads live under `staging_root` until committed."""
        self._s3 = client
        self._bucket = location.bucket
        base = f"{location.prefix}/" if location.prefix else ""
        self._root, self._staging = f"{base}sha256/", f"{base}staging/"
        self._local = LocalArtifactStore(staging_root)  # for its staging area only
        self._part_bytes = part_bytes
        self._pool = ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="s3-parts")

    @property
    def staging_dir(self) -> Path:
        return self._local.staging_dir

    def clean_staging(self, idle_s: float) -> tuple[int, int]:
        """Remove abandoned uploads (left by a killed process): local staged files, and on S3 the multipart
        uploads and staging objects older than `idle_s`. Returns (files, bytes) removed."""
        files, size = self._local.clean_staging(idle_s)
        try:
            removed, removed_bytes = self._clean_remote_staging(datetime.now(UTC) - timedelta(seconds=idle_s))
        except (BotoCoreError, ClientError) as exc:  # best effort: S3 being away must not stop a start
            log.warning("could not clean abandoned S3 uploads under %s: %s", self._staging, exc)
            return files, size
        return files + removed, size + removed_bytes

    def _clean_remote_staging(self, cutoff: datetime) -> tuple[int, int]:
        files = size = 0
        uploads = self._s3.get_paginator("list_multipart_uploads").paginate(Bucket=self._bucket, Prefix=self._staging)
        for page in uploads:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    self._s3.abort_multipart_upload(Bucket=self._bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    files += 1
        objects = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=self._staging)
        for page in objects:
            for item in page.get("Contents", []):
                if item["LastModified"] < cutoff:
                    self._s3.delete_object(Bucket=self._bucket, Key=item["Key"])
                    files, size = files + 1, size + int(item["Size"])
        return files, size

    def key_of(self, digest: str) -> str:
        hexdigest = validate_digest(digest).removeprefix("sha256:")
        return f"{self._root}{hexdigest[:2]}/{hexdigest}"

    def stage(self, max_bytes: int) -> AbstractContextManager[LocalStagedArtifact]:
        return self._local.stage(max_bytes)

    @contextlib.contextmanager
    def receive(self, max_bytes: int) -> Iterator[S3StreamedArtifact]:
        """Bytes streamed to S3 as they arrive (no local copy); aborted on exit unless committed."""
        incoming = S3StreamedArtifact(
            self._s3,
            self._bucket,
            f"{self._staging}{uuid.uuid4().hex}",
            self._part_bytes,
            self._pool,
            PARTS_IN_FLIGHT,
            max_bytes,
        )
        try:
            yield incoming
        finally:
            if not incoming.committed:
                incoming.abort()

    def commit(self, staged: IncomingArtifact) -> None:
        if isinstance(staged, S3StreamedArtifact):
            self._commit_streamed(staged)
            return
        if not isinstance(staged, LocalStagedArtifact):
            raise TypeError("commit() takes what this store's stage() or receive() gave")
        key = self.key_of(staged.digest)
        if self._head(key) is not None:
            self._touch(key, staged.digest)
        else:
            with staged.path.open("rb") as file:
                self.upload(key, file, staged.digest)
        staged.path.unlink(missing_ok=True)
        staged.committed = True

    def _commit_streamed(self, incoming: S3StreamedArtifact) -> None:
        key, metadata = self.key_of(incoming.digest), {"sha256": incoming.digest.removeprefix("sha256:")}
        body = incoming.in_memory
        if self._head(key) is not None:
            self._touch(key, incoming.digest)
            incoming.abort()  # the staging upload is not needed: the same bytes are stored
        elif body is not None:
            self._s3.put_object(
                Bucket=self._bucket, Key=key, Body=body, Metadata=metadata, ChecksumSHA256=sha256_base64(body)
            )
        else:
            incoming.complete()
            source = {"Bucket": self._bucket, "Key": incoming.staging_key}
            try:  # a server-side copy names the object by its digest (one request up to S3's 5 GiB, in parts above)
                self._s3.copy(
                    source,
                    self._bucket,
                    key,
                    ExtraArgs={"Metadata": metadata, "MetadataDirective": "REPLACE"},
                    Config=COPY,
                )
            finally:
                self._s3.delete_object(Bucket=self._bucket, Key=incoming.staging_key)
        incoming.committed = True

    def _touch(self, key: str, digest: str) -> None:
        """Deduplicated; and young again (copied onto itself), so that garbage collection spares it for its grace
        period: the upload that just found it is about to reference it."""
        source = {"Bucket": self._bucket, "Key": key}
        metadata = {"sha256": digest.removeprefix("sha256:")}
        self._s3.copy_object(
            Bucket=self._bucket, Key=key, CopySource=source, Metadata=metadata, MetadataDirective="REPLACE"
        )

    def upload(self, key: str, file: BinaryIO, digest: str) -> None:
        """Send `file` (whose digest is known) to `key`, parts in parallel with per-part checksums; aborted on any
        failure, so the object appears complete or not at all. Bytes that are not `digest` are refused."""
        metadata = {"sha256": digest.removeprefix("sha256:")}
        sender = S3StreamedArtifact(
            self._s3, self._bucket, key, self._part_bytes, self._pool, PARTS_IN_FLIGHT, 1 << 62, metadata
        )
        try:
            while chunk := file.read(self._part_bytes):
                sender.write(chunk)
            if sender.finish() != digest:
                raise DataLoss(f"the bytes sent as {digest} have digest {sender.digest}: not stored")
            body = sender.in_memory
            if body is not None:
                self._s3.put_object(
                    Bucket=self._bucket, Key=key, Body=body, Metadata=metadata, ChecksumSHA256=sha256_base64(body)
                )
            else:
                sender.complete()
        except BaseException:
            sender.abort()
            raise

    def exists(self, digest: str) -> bool:
        return self._head(self.key_of(digest)) is not None

    def size(self, digest: str) -> int:
        head = self._head(self.key_of(digest))
        if head is None:
            raise NotFound(f"artifact {digest} not found")
        return int(head["ContentLength"])

    def read(self, digest: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        key = self.key_of(digest)
        try:
            answer = self._s3.get_object(Bucket=self._bucket, Key=key)
        except self._s3.exceptions.NoSuchKey:
            raise NotFound(f"artifact {digest} not found") from None
        if answer.get("Metadata", {}).get("sha256") != digest.removeprefix("sha256:"):
            answer["Body"].close()
            raise DataLoss(f"stored object for {digest} does not name that digest: it is misplaced")
        return _verified(answer["Body"], digest, chunk_size)

    def blobs(self) -> Iterator[StoredBlob]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=self._root)
        for page in pages:
            for item in page.get("Contents", []):
                digest = "sha256:" + item["Key"].rsplit("/", 1)[-1]
                try:
                    if self.key_of(digest) != item["Key"]:
                        continue  # a stray name, not one of ours
                except InvalidArgument:
                    continue
                yield StoredBlob(digest, int(item["Size"]), item["LastModified"])

    def stored_blob(self, digest: str) -> StoredBlob | None:
        head = self._head(self.key_of(digest))
        return None if head is None else StoredBlob(digest, int(head["ContentLength"]), head["LastModified"])

    def delete(self, digest: str) -> None:
        self._s3.delete_object(Bucket=self._bucket, Key=self.key_of(digest))

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self._s3.head_object(Bucket=self._bucket, Key=key)
        except self._s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head


def _verified(body: Any, digest: str, chunk_size: int) -> Iterator[bytes]:
    hasher = hashlib.sha256()
    try:
        for chunk in body.iter_chunks(chunk_size):
            hasher.update(chunk)
            yield chunk
    finally:
        body.close()
    if "sha256:" + hasher.hexdigest() != digest:
        raise DataLoss(f"stored artifact {digest} does not match its digest: it is corrupted")
