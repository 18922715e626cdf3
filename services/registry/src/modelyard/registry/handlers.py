"""The registry use cases: check access, validate, change state and record its events in one transaction.

Synchronous methods do blocking database and file work: async transports call them in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from modelyard.auth import Principal, Role
from modelyard.registry import convert
from modelyard.registry.domain.errors import (
    AlreadyExists,
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from modelyard.registry.domain.model import (
    AliasMove,
    Artifact,
    ArtifactKind,
    GarbageReport,
    Lineage,
    MediaType,
    ModelVersion,
    RegisteredModel,
    VersionStatus,
    derive_feature_names,
    validate_alias,
    validate_description,
    validate_digest,
    validate_model_name,
    validate_tags,
    validate_version,
)
from modelyard.registry.domain.pagination import Page, decode_token, encode_token, page_size
from modelyard.registry.domain.ports import (
    ArtifactInspector,
    ArtifactStore,
    RegistryStore,
    RegistryTransaction,
    StagedArtifact,
)

log = logging.getLogger(__name__)

READ = (Role.VIEWER, Role.PUBLISHER, Role.APPROVER, Role.SERVICE)
PUBLISH = (Role.PUBLISHER, Role.SERVICE)
MOVE_ALIAS = (Role.PUBLISHER, Role.APPROVER, Role.SERVICE)
# Protected aliases (e.g. `production`) decide what serves traffic: publishers may not move them themselves.
MOVE_PROTECTED_ALIAS = (Role.APPROVER, Role.SERVICE)
ADMINISTER = (Role.ADMIN,)
LATEST = "latest"


@dataclass(frozen=True)
class RegistryPolicy:
    max_artifact_bytes: int = 2 * 1024**3
    protected_aliases: frozenset[str] = frozenset({"production"})
    download_chunk_bytes: int = 1024 * 1024
    gc_grace_s: float = 3600.0


@dataclass(frozen=True)
class NewVersion:
    model_name: str
    artifact_digest: str
    reference_dataset_digest: str = ""
    feature_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The reference dataset's target column, left out when feature names are taken from its columns.
    label_column: str = ""
    lineage: Lineage = field(default_factory=Lineage)
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionQuery:
    model_name: str = ""
    statuses: tuple[VersionStatus, ...] = ()
    digest: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


def utc_now() -> datetime:
    return datetime.now(UTC)


class RegistryHandlers:
    def __init__(
        self,
        store: RegistryStore,
        artifacts: ArtifactStore,
        inspector: ArtifactInspector,
        policy: RegistryPolicy,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._inspector = inspector
        self.policy = policy
        self._now = clock

    # -- registered models ------------------------------------------------------------------------------------

    def create_model(
        self, principal: Principal, name: str, description: str = "", owner: str = "", tags: Mapping[str, str] = {}
    ) -> RegisteredModel:
        principal.require("create models", PUBLISH)
        model = RegisteredModel(
            name=validate_model_name(name),
            description=validate_description(description),
            owner=owner or principal.name,
            tags=validate_tags(tags),
            created_by=principal.name,
            created_at=self._now(),
        )
        with self._store.transaction(write=True) as tx:
            if not tx.add_model(model):
                raise AlreadyExists(f"model {name!r} already exists")
            tx.record(convert.model_created(model))
        return model

    def get_model(self, principal: Principal, name: str) -> RegisteredModel:
        principal.require("read models", READ)
        with self._store.transaction() as tx:
            model = tx.get_model(validate_model_name(name))
        if model is None:
            raise NotFound(f"model {name!r} not found")
        return model

    def list_models(
        self,
        principal: Principal,
        name_contains: str = "",
        tags: Mapping[str, str] = {},
        size: int = 0,
        token: str = "",
    ) -> Page[RegisteredModel]:
        principal.require("list models", READ)
        limit = page_size(size)
        after = decode_token(token, str)
        with self._store.transaction() as tx:
            models = tx.list_models(name_contains, validate_tags(tags), after[0] if after else None, limit)
        return Page(models, encode_token(models[-1].name) if len(models) == limit else "")

    # -- artifacts --------------------------------------------------------------------------------------------

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

    # -- model versions ---------------------------------------------------------------------------------------

    def create_version(self, principal: Principal, new: NewVersion) -> ModelVersion:
        principal.require("register model versions", PUBLISH)
        name = validate_model_name(new.model_name)
        validate_digest(new.artifact_digest)
        if new.reference_dataset_digest:
            validate_digest(new.reference_dataset_digest)
        tags = validate_tags(new.tags)
        with self._store.transaction(write=True) as tx:
            artifact = _artifact_of_kind(tx, new.artifact_digest, ArtifactKind.ONNX_MODEL)
            dataset = None
            if new.reference_dataset_digest:
                dataset = _artifact_of_kind(tx, new.reference_dataset_digest, ArtifactKind.DATASET).dataset
            assert artifact.signature is not None
            features = derive_feature_names(artifact.signature, new.feature_names, dataset, new.label_column)
            number = tx.next_version(name)
            if number is None:
                raise NotFound(f"model {name!r} not found")
            version = ModelVersion(
                model_name=name,
                version=number,
                digest=artifact.digest,
                size_bytes=artifact.size_bytes,
                media_type=artifact.media_type,
                signature=artifact.signature,
                lineage=new.lineage,
                feature_names=features,
                reference_dataset_digest=new.reference_dataset_digest,
                status=VersionStatus.PENDING_REGISTRATION,
                status_message="registration checks pending",
                created_by=principal.name,
                created_at=self._now(),
                tags=tags,
            )
            tx.add_version(version)
            tx.record(convert.version_registered(version))
        return version

    def get_version(self, principal: Principal, name: str, version: int) -> ModelVersion:
        principal.require("read model versions", READ)
        with self._store.transaction() as tx:
            return _existing_version(tx, validate_model_name(name), validate_version(version))

    def list_versions(
        self, principal: Principal, query: VersionQuery, size: int = 0, token: str = ""
    ) -> Page[ModelVersion]:
        principal.require("list model versions", READ)
        if query.model_name:
            validate_model_name(query.model_name)
        if query.digest:
            validate_digest(query.digest)
        limit = page_size(size)
        after = decode_token(token, str, int)
        with self._store.transaction() as tx:
            if query.model_name:
                _existing_model(tx, query.model_name)
            versions = tx.list_versions(
                query.model_name,
                query.statuses,
                query.digest,
                validate_tags(query.tags),
                (after[0], after[1]) if after else None,
                limit,
            )
        last = versions[-1] if len(versions) == limit else None
        return Page(versions, encode_token(last.model_name, last.version) if last else "")

    def check_pending(self, limit: int = 10) -> int:
        """Run the registration checks of pending versions (the asynchronous half of registration)."""
        with self._store.transaction() as tx:
            pending = tx.pending_versions(limit)
        for name, number in pending:
            self.check_version(name, number)
        return len(pending)

    def check_version(self, name: str, number: int) -> None:
        """Re-verify the stored bytes of the version (and its reference dataset), then mark it READY or FAILED."""
        with self._store.transaction() as tx:
            version = _existing_version(tx, name, number)
        digests = [version.digest, *([version.reference_dataset_digest] if version.reference_dataset_digest else [])]
        status, message = VersionStatus.READY, "artifact verified"
        for digest in digests:
            try:
                for _ in self._artifacts.read(digest, self.policy.download_chunk_bytes):
                    pass
            except (DataLoss, NotFound) as exc:
                status, message = VersionStatus.FAILED_REGISTRATION, str(exc)
                break
        self._change_status(version, status, message, expected=VersionStatus.PENDING_REGISTRATION)

    def _change_status(
        self, version: ModelVersion, status: VersionStatus, message: str, expected: VersionStatus
    ) -> None:
        with self._store.transaction(write=True) as tx:
            tx.lock_model(version.model_name)
            current = _existing_version(tx, version.model_name, version.version)
            if current.status is not expected:
                return  # someone else moved it on (another checker, an archive): theirs stands
            tx.set_status(version.model_name, version.version, status, message)
            tx.record(convert.status_changed(version, expected, status, message))

    def archive_version(self, principal: Principal, name: str, number: int) -> ModelVersion:
        principal.require("archive model versions", MOVE_ALIAS)
        validate_model_name(name)
        validate_version(number)
        with self._store.transaction(write=True) as tx:
            tx.lock_model(name)
            version = _existing_version(tx, name, number)
            if version.status is VersionStatus.ARCHIVED:
                return version
            pointing = sorted(alias for alias, v in tx.aliases_of(name).items() if v == number)
            if pointing:
                raise FailedPrecondition(f"{name} version {number} is named by aliases {pointing}: move them first")
            tx.set_status(name, number, VersionStatus.ARCHIVED, f"archived by {principal.name}")
            tx.record(convert.version_archived(version, principal.name))
            return _existing_version(tx, name, number)

    # -- tags -------------------------------------------------------------------------------------------------

    def update_tags(
        self, principal: Principal, name: str, version: int, set_tags: Mapping[str, str], remove: Sequence[str]
    ) -> dict[str, str]:
        """Set and remove tags of a model (version 0) or of one of its versions; the tags afterwards."""
        principal.require("change tags", PUBLISH)
        validate_model_name(name)
        validate_tags(set_tags)
        validate_tags(dict.fromkeys(remove, ""))
        with self._store.transaction(write=True) as tx:
            model_id = tx.lock_model(name)
            if model_id is None:
                raise NotFound(f"model {name!r} not found")
            if version:
                _existing_version(tx, name, validate_version(version))
            tx.update_tags(name, version, set_tags, remove)
            tags = tx.tags_of(model_id, version)
            tx.record(convert.tags_changed(name, version, tags, principal.name))
        return tags

    # -- aliases ----------------------------------------------------------------------------------------------

    def set_alias(self, principal: Principal, name: str, alias: str, version: int, reason: str = "") -> AliasMove:
        self._require_alias_rights(principal, alias)
        validate_model_name(name)
        validate_version(version)
        with self._store.transaction(write=True) as tx:
            tx.lock_model(name)
            target = _existing_version(tx, name, version)
            if target.status in (VersionStatus.ARCHIVED, VersionStatus.FAILED_REGISTRATION):
                raise FailedPrecondition(f"{name} version {version} is {target.status.value}: an alias cannot name it")
            current = tx.get_alias(name, alias)
            move = AliasMove(name, alias, current, version, principal.name, self._now(), reason)
            if current != version:  # setting an alias to where it already points is a no-op, not history
                self._move(tx, move)
            return move

    def delete_alias(self, principal: Principal, name: str, alias: str, reason: str = "") -> AliasMove:
        self._require_alias_rights(principal, alias)
        validate_model_name(name)
        with self._store.transaction(write=True) as tx:
            tx.lock_model(name)
            current = tx.get_alias(name, alias)
            if current is None:
                _existing_model(tx, name)
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            move = AliasMove(name, alias, current, None, principal.name, self._now(), reason)
            self._move(tx, move)
            return move

    def resolve_alias(self, principal: Principal, name: str, alias: str, as_of: datetime | None = None) -> ModelVersion:
        """The version an alias names now, or named at `as_of`; `latest` is the newest READY version."""
        principal.require("resolve aliases", READ)
        validate_model_name(name)
        with self._store.transaction() as tx:
            if alias == LATEST and as_of is None:
                ready = tx.list_versions(name, (VersionStatus.READY,), "", {}, None, 1)
                if not ready:
                    _existing_model(tx, name)
                    raise NotFound(f"model {name!r} has no READY version")
                return ready[0]
            validate_alias(alias)
            if as_of is None:
                number = tx.get_alias(name, alias)
                when = "now"
            else:
                move = tx.alias_as_of(name, alias, as_of)
                number = move.to_version if move else None
                when = f"at {as_of.isoformat()}"
            if number is None:
                _existing_model(tx, name)  # checked only on a miss: the hit path is the hot one
                raise NotFound(f"alias {alias!r} of model {name!r} names no version {when}")
            return _existing_version(tx, name, number)

    def alias_history(
        self, principal: Principal, name: str, alias: str, size: int = 0, token: str = ""
    ) -> Page[AliasMove]:
        principal.require("read alias history", READ)
        validate_model_name(name)
        validate_alias(alias)
        limit = page_size(size)
        before = decode_token(token, int)
        with self._store.transaction() as tx:
            _existing_model(tx, name)
            moves = tx.alias_history(name, alias, before[0] if before else None, limit)
        if not moves and before is None:
            raise NotFound(f"model {name!r} has no alias {alias!r} and never had")
        return Page([m for _, m in moves], encode_token(moves[-1][0]) if len(moves) == limit else "")

    def _require_alias_rights(self, principal: Principal, alias: str) -> None:
        validate_alias(alias)
        if alias in self.policy.protected_aliases:
            principal.require(f"move the protected alias {alias!r}", MOVE_PROTECTED_ALIAS)
        else:
            principal.require("move aliases", MOVE_ALIAS)

    def _move(self, tx: RegistryTransaction, move: AliasMove) -> None:
        tx.move_alias(move)
        tx.record(convert.alias_moved(move))


def _existing_model(tx: RegistryTransaction, name: str) -> None:
    if not tx.model_exists(name):
        raise NotFound(f"model {name!r} not found")


def _existing_version(tx: RegistryTransaction, name: str, number: int) -> ModelVersion:
    version = tx.get_version(name, number)
    if version is None:
        _existing_model(tx, name)
        raise NotFound(f"model {name!r} has no version {number}")
    return version


def _artifact_of_kind(tx: RegistryTransaction, digest: str, kind: ArtifactKind) -> Artifact:
    artifact = tx.get_artifact(digest)
    if artifact is None:
        raise NotFound(f"artifact {digest} not found: upload it first")
    if artifact.media_type.kind is not kind:
        raise InvalidArgument(f"artifact {digest} is {artifact.media_type.value}, not a {kind.value}")
    return artifact
