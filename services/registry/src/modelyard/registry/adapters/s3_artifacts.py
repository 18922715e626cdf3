"""The artifact store on S3 (or any S3-compatible server): content-addressed objects under a bucket prefix.

Layout: `<prefix>/sha256/<first two hex>/<hex>`. Uploads are staged in a local file first (hashed as received, and
the ONNX inspector needs the bytes at hand), then streamed to S3 as a multipart upload, one part in memory at a
time, each part carrying its SHA-256 for the server to check. An upload that fails or is cut off half way is
aborted: an incomplete multipart upload is never an object, so nothing is visible under the digest. The object's
own metadata names its digest and every read re-hashes the bytes (DataLoss at the end when they do not match).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]

from modelyard.registry.adapters.artifacts import LocalArtifactStore, LocalStagedArtifact
from modelyard.registry.domain.errors import DataLoss, InvalidArgument, NotFound
from modelyard.registry.domain.model import StoredBlob, validate_digest
from modelyard.registry.domain.ports import StagedArtifact

PART_BYTES = 8 * 1024 * 1024  # S3's parts are 5 MiB at least (but the last)


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
        """`client` is a boto3 S3 client; staged uploads live under `staging_root` until committed."""
        self._s3 = client
        self._bucket = location.bucket
        self._root = f"{location.prefix}/sha256/" if location.prefix else "sha256/"
        self._local = LocalArtifactStore(staging_root)  # for its staging area only
        self._part_bytes = part_bytes

    @property
    def staging_dir(self) -> Path:
        return self._local.staging_dir

    def clean_staging(self, idle_s: float) -> tuple[int, int]:
        return self._local.clean_staging(idle_s)

    def key_of(self, digest: str) -> str:
        hexdigest = validate_digest(digest).removeprefix("sha256:")
        return f"{self._root}{hexdigest[:2]}/{hexdigest}"

    def stage(self, max_bytes: int) -> AbstractContextManager[LocalStagedArtifact]:
        return self._local.stage(max_bytes)

    def commit(self, staged: StagedArtifact) -> None:
        if not isinstance(staged, LocalStagedArtifact):
            raise TypeError("commit() takes what this store's stage() gave")
        key = self.key_of(staged.digest)
        if self._head(key) is not None:
            # Deduplicated; and young again (copied onto itself), so that garbage collection spares it for its
            # grace period: the upload that just found it is about to reference it.
            source = {"Bucket": self._bucket, "Key": key}
            metadata = {"sha256": staged.digest.removeprefix("sha256:")}
            self._s3.copy_object(
                Bucket=self._bucket, Key=key, CopySource=source, Metadata=metadata, MetadataDirective="REPLACE"
            )
        else:
            with staged.path.open("rb") as file:
                self.upload(key, file, staged.digest)
        staged.path.unlink(missing_ok=True)
        staged.committed = True

    def upload(self, key: str, file: BinaryIO, digest: str) -> None:
        """Stream `file` to `key` as a multipart upload with per-part checksums; aborted on any failure, so the
        object appears complete or not at all."""
        metadata = {"sha256": digest.removeprefix("sha256:")}
        upload_id = self._s3.create_multipart_upload(
            Bucket=self._bucket, Key=key, Metadata=metadata, ChecksumAlgorithm="SHA256"
        )["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            number = 1
            while True:
                chunk = file.read(self._part_bytes)
                if not chunk and parts:
                    break
                checksum = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
                answer = self._s3.upload_part(
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                    ChecksumSHA256=checksum,
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum})
                number += 1
                if not chunk:
                    break
            self._s3.complete_multipart_upload(
                Bucket=self._bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
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
