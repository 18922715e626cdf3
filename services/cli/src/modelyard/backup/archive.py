"""The archive: a tar file (gzip-compressed when its name ends in .gz or .tgz) whose last member, manifest.json,
lists every other member with its sha256 and size. Verifying reads every member once and compares."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from pydantic import BaseModel, ValidationError

from modelyard.backup.databases import DatabaseKind

FORMAT: Literal["modelyard-backup/1"] = "modelyard-backup/1"
MANIFEST = "manifest.json"
DATA = "data"  # members under data/ mirror the data dir: data/<service>/...
CHUNK = 1 << 20


class ArchiveError(Exception):
    """The archive is unreadable, incomplete or tampered with; the message names the member and the problem."""


class Member(BaseModel):
    sha256: str
    size: int


class DatabaseRecord(BaseModel):
    kind: DatabaseKind
    member: str
    url: str  # where it was taken from, password hidden
    schema_revision: str | None


class AuditRecord(BaseModel):
    models: dict[str, str]  # model name -> member of its export
    entries: int


class Manifest(BaseModel):
    format: Literal["modelyard-backup/1"] = FORMAT
    created_at: datetime
    modelyard_version: str
    databases: dict[str, DatabaseRecord]  # service -> its snapshot
    audit: AuditRecord | None  # None when governance was not running to export it
    members: dict[str, Member]  # every member but the manifest


def _mode(path: Path, writing: bool) -> Literal["w:gz", "w", "r:*"]:
    if not writing:
        return "r:*"
    return "w:gz" if path.name.endswith((".gz", ".tgz")) else "w"


class _Hashing:
    """A file read through this is hashed on the way (tar reads each member once)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self.hasher = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self.hasher.update(chunk)
        return chunk


class ArchiveWriter:
    """Adds files, hashing them as they are written; `finish(manifest)` appends the manifest, last."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self._tar = tar
        self.members: dict[str, Member] = {}

    def add(self, name: str, path: Path) -> None:
        info = self._tar.gettarinfo(str(path), arcname=name)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        with path.open("rb") as file:
            reader = _Hashing(file)
            self._tar.addfile(info, reader)
        self.members[name] = Member(sha256=reader.hasher.hexdigest(), size=info.size)

    def add_tree(self, prefix: str, root: Path) -> None:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            self.add(f"{prefix}/{path.relative_to(root).as_posix()}", path)

    def finish(self, manifest: Manifest) -> None:
        data = manifest.model_dump_json(indent=2).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        info.mtime = int(manifest.created_at.timestamp())
        self._tar.addfile(info, io.BytesIO(data))


@contextmanager
def writing(path: Path) -> Iterator[ArchiveWriter]:
    """An archive written to a temp file beside `path` and renamed into place only once complete."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        with tarfile.open(partial, _mode(path, writing=True)) as tar:
            yield ArchiveWriter(tar)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and bool(path.parts)


def read_manifest(tar: tarfile.TarFile) -> Manifest:
    try:
        file = tar.extractfile(MANIFEST)
    except KeyError:
        raise ArchiveError(f"no {MANIFEST}: not a modelyard backup") from None
    if file is None:
        raise ArchiveError(f"{MANIFEST} is not a file")
    try:
        return Manifest.model_validate_json(file.read())
    except ValidationError as exc:
        raise ArchiveError(f"{MANIFEST} is malformed ({exc.error_count()} problems)") from None


def verify_members(tar: tarfile.TarFile, manifest: Manifest) -> None:
    """Every member the manifest lists is there with its digest and size, and nothing else is."""
    seen: set[str] = set()
    for info in tar:
        if info.name == MANIFEST:
            continue
        if not info.isfile() or not safe_name(info.name):
            raise ArchiveError(f"member {info.name!r} is not a plain file with a relative name")
        expected = manifest.members.get(info.name)
        if expected is None:
            raise ArchiveError(f"member {info.name} is not in the manifest")
        file = tar.extractfile(info)
        assert file is not None
        if _sha256(file) != expected.sha256 or info.size != expected.size:
            raise ArchiveError(f"member {info.name} does not match its digest in the manifest: it was altered")
        seen.add(info.name)
    missing = sorted(set(manifest.members) - seen)
    if missing:
        raise ArchiveError(f"{len(missing)} members of the manifest are missing, e.g. {missing[0]}")


def _sha256(file: IO[bytes]) -> str:
    hasher = hashlib.sha256()
    for chunk in iter(lambda: file.read(CHUNK), b""):
        hasher.update(chunk)
    return hasher.hexdigest()


@contextmanager
def reading(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(path, _mode(path, writing=False)) as tar:
            yield tar
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"cannot read {path.name}: {type(exc).__name__}: {exc}") from None
