"""Bytes sent to S3 as they arrive, without a local copy: what a run's or logged model's file upload needs (no
inspector reads it first).

The digest that names an object is known only at the end, so the bytes go to a staging key as a multipart upload
while they are received: full parts are sent by a pool of threads, at most `in_flight` of one upload at a time (the
memory an upload holds: about `in_flight + 1` parts, whatever its size), each part with its SHA-256 for the server
to check; the whole is hashed as it passes. Committing names the object by its digest with a server-side copy (or
drops the staging upload when those bytes are stored already); an upload smaller than a part never leaves memory
and is put under its digest directly. Anything but a commit aborts the multipart upload: nothing becomes visible.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from modelyard.registry.adapters.artifacts import HashedIncoming


def sha256_base64(data: bytes) -> str:
    """S3's form of a SHA-256 checksum."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class S3StreamedArtifact(HashedIncoming):
    def __init__(
        self,
        client: Any,
        bucket: str,
        staging_key: str,
        part_bytes: int,
        pool: ThreadPoolExecutor,
        in_flight: int,
        max_bytes: int,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """`staging_key` is where the parts go (the object's own key when its digest is known: `metadata`)."""
        super().__init__(max_bytes)
        self._metadata = metadata or {}
        self._s3, self._bucket, self.staging_key = client, bucket, staging_key
        self._part_bytes, self._pool, self._in_flight = part_bytes, pool, in_flight
        self._chunks: list[bytes] = []  # received, not sent yet: less than a part
        self._buffered = 0
        self._upload_id = ""
        self._sent: list[Future[dict[str, Any]]] = []
        self.completed = False

    @property
    def in_memory(self) -> bytes | None:
        """All of the bytes when no part was sent (an upload smaller than a part), else None."""
        return None if self._sent else b"".join(self._chunks)

    def write(self, chunk: bytes) -> None:
        self._count(chunk)
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= self._part_bytes:
            data = b"".join(self._chunks)  # one copy of the received chunks, which are let go
            self._chunks.clear()
            for start in range(0, len(data) - self._part_bytes + 1, self._part_bytes):
                self._send(data[start : start + self._part_bytes])
            rest = len(data) % self._part_bytes
            self._chunks, self._buffered = ([data[-rest:]] if rest else []), rest

    def finish(self) -> str:
        if self._sent and self._chunks:
            self._send(b"".join(self._chunks))
            self._chunks, self._buffered = [], 0
        for future in self._sent:
            future.result()  # every part is on the server (or its error is raised here)
        return self._finished()

    def complete(self) -> None:
        """Make the staging object of the parts sent (after `finish`)."""
        parts = [future.result() for future in self._sent]
        self._s3.complete_multipart_upload(
            Bucket=self._bucket, Key=self.staging_key, UploadId=self._upload_id, MultipartUpload={"Parts": parts}
        )
        self.completed = True

    def abort(self) -> None:
        """Drop whatever was sent: pending parts are cancelled or awaited, the multipart upload is aborted."""
        for future in self._sent:
            future.cancel()
        wait(self._sent)
        self._chunks, self._buffered = [], 0
        if self._upload_id and not self.completed:
            with contextlib.suppress(Exception):  # a lingering upload is invisible; the staging cleanup aborts it
                self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self.staging_key, UploadId=self._upload_id)

    def _send(self, part: bytes) -> None:
        if not self._upload_id:
            self._upload_id = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=self.staging_key, ChecksumAlgorithm="SHA256", Metadata=self._metadata
            )["UploadId"]
        self._sent.append(self._pool.submit(self._upload_part, len(self._sent) + 1, part))
        running = [future for future in self._sent if not future.done()]
        if len(running) >= self._in_flight:
            wait(running, return_when=FIRST_COMPLETED)
        for future in self._sent:
            if future.done() and future.exception() is not None:
                future.result()  # fail fast: raise the part's error now, not at the end

    def _upload_part(self, number: int, body: bytes) -> dict[str, Any]:
        checksum = sha256_base64(body)
        answer = self._s3.upload_part(
            Bucket=self._bucket,
            Key=self.staging_key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
            ChecksumSHA256=checksum,
        )
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum}
