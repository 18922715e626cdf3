"""The embedded artifact store: content-addressed files under a local directory.

Layout: `<root>/sha256/<first two hex>/<hex>` for stored blobs and `<root>/staging/` for uploads in progress, on
the same file system so that making an upload visible is one atomic rename. A blob is written to a temp file,
fsynced, renamed into place, and its directory fsynced, so a crash never leaves a truncated blob under a digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from modelyard.registry.domain.errors import DataLoss, InvalidArgument, NotFound, ResourceExhausted
from modelyard.registry.domain.model import StoredBlob, validate_digest
from modelyard.registry.domain.ports import IncomingArtifact


class HashedIncoming:
    """What every incoming artifact does with its bytes: count them against the limit and hash them."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._hash = hashlib.sha256()
        self._size = 0
        self._digest = ""
        self.committed = False

    @property
    def size_bytes(self) -> int:
        return self._size

    @property
    def digest(self) -> str:
        if not self._digest:
            raise RuntimeError("incoming artifact not finished")
        return self._digest

    def _count(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._max_bytes:
            raise ResourceExhausted(f"artifact larger than the limit of {self._max_bytes} bytes")
        self._hash.update(chunk)

    def _finished(self) -> str:
        self._digest = "sha256:" + self._hash.hexdigest()
        return self._digest


class LocalStagedArtifact(HashedIncoming):
    def __init__(self, path: Path, file: BinaryIO, max_bytes: int) -> None:
        super().__init__(max_bytes)
        self._path = path
        self._file = file

    @property
    def path(self) -> Path:
        return self._path

    def write(self, chunk: bytes) -> None:
        self._count(chunk)
        self._file.write(chunk)

    def finish(self) -> str:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self._finished()


class LocalArtifactStore:
    def __init__(self, root: Path) -> None:
        self._blobs = root / "sha256"
        self._staging = root / "staging"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._staging.mkdir(parents=True, exist_ok=True)

    def clean_staging(self, idle_s: float, now: float | None = None) -> tuple[int, int]:
        """Delete staged uploads nobody has written to for `idle_s` (left by a killed process: a live upload writes
        all the time, and replicas may share this directory, so younger files are another's upload in progress).
        Returns (files, bytes) removed."""
        cutoff = (time.time() if now is None else now) - idle_s
        files = size = 0
        for path in self._staging.glob("upload-*"):
            with contextlib.suppress(FileNotFoundError):  # finished or removed meanwhile
                stat = path.stat()
                if stat.st_mtime < cutoff:
                    path.unlink()
                    files, size = files + 1, size + stat.st_size
        return files, size

    @property
    def staging_dir(self) -> Path:
        return self._staging

    def path_of(self, digest: str) -> Path:
        hexdigest = validate_digest(digest).removeprefix("sha256:")
        return self._blobs / hexdigest[:2] / hexdigest

    @contextlib.contextmanager
    def stage(self, max_bytes: int) -> Iterator[LocalStagedArtifact]:
        fd, name = tempfile.mkstemp(dir=self._staging, prefix="upload-")
        path = Path(name)
        staged = LocalStagedArtifact(path, os.fdopen(fd, "wb"), max_bytes)
        try:
            yield staged
        finally:
            # Rejected, cut off or failed: nothing of it stays (the file is gone once committed).
            with contextlib.suppress(OSError):
                staged._file.close()
            if not staged.committed:
                path.unlink(missing_ok=True)

    def receive(self, max_bytes: int) -> AbstractContextManager[LocalStagedArtifact]:
        """On a local disk, receiving is staging: committing the staged file is one rename."""
        return self.stage(max_bytes)

    def commit(self, staged: IncomingArtifact) -> None:
        if not isinstance(staged, LocalStagedArtifact):
            raise TypeError("commit() takes what this store's stage() gave")
        target = self.path_of(staged.digest)
        if target.exists():
            staged.path.unlink()  # deduplicated: the same bytes are already stored
            # ... and young again, so that garbage collection spares them for its grace period: the upload that
            # just found them is about to reference them.
            with contextlib.suppress(FileNotFoundError):
                os.utime(target)
        else:
            target.parent.mkdir(exist_ok=True)
            os.chmod(staged.path, 0o444)
            os.replace(staged.path, target)
            _fsync_dir(target.parent)
        staged.committed = True

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path_of(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"artifact {digest} not found") from None

    def read(self, digest: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        try:
            file = self.path_of(digest).open("rb")
        except FileNotFoundError:
            raise NotFound(f"artifact {digest} not found") from None
        return _verified_chunks(file, digest, chunk_size)

    def blobs(self) -> Iterator[StoredBlob]:
        for path in self._blobs.glob("??/*"):
            blob = self._stat(path)
            if blob is not None:
                yield blob

    def stored_blob(self, digest: str) -> StoredBlob | None:
        return self._stat(self.path_of(digest))

    def delete(self, digest: str) -> None:
        self.path_of(digest).unlink(missing_ok=True)

    @staticmethod
    def _stat(path: Path) -> StoredBlob | None:
        """The blob at `path`, or None for a file that is gone or is not one of ours (a stray name)."""
        digest = "sha256:" + path.name
        try:
            if path.parent.name != path.name[:2] or validate_digest(digest) != digest:
                return None
            stat = path.stat()
        except (InvalidArgument, FileNotFoundError):
            return None
        return StoredBlob(digest, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))


def _verified_chunks(file: BinaryIO, digest: str, chunk_size: int) -> Iterator[bytes]:
    hasher = hashlib.sha256()
    with file:
        while chunk := file.read(chunk_size):
            hasher.update(chunk)
            yield chunk
    if "sha256:" + hasher.hexdigest() != digest:
        raise DataLoss(f"stored artifact {digest} does not match its digest: it is corrupted")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
