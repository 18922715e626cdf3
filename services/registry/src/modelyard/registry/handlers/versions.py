"""The registry's use cases, model versions: registration, its asynchronous checks, reads and archiving."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modelyard.auth import Principal
from modelyard.registry import convert
from modelyard.registry.domain.errors import (
    DataLoss,
    FailedPrecondition,
    NotFound,
)
from modelyard.registry.domain.model import (
    ArtifactKind,
    Lineage,
    ModelVersion,
    VersionStatus,
    derive_feature_names,
    validate_digest,
    validate_model_name,
    validate_tags,
    validate_version,
)
from modelyard.registry.domain.pagination import Page, decode_token, encode_token, page_size
from modelyard.registry.handlers.base import (
    MOVE_ALIAS,
    PUBLISH,
    READ,
    UseCases,
    artifact_of_kind,
    existing_model,
    existing_version,
)


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


class VersionUseCases(UseCases):
    def create_version(self, principal: Principal, new: NewVersion) -> ModelVersion:
        principal.require("register model versions", PUBLISH)
        name = validate_model_name(new.model_name)
        validate_digest(new.artifact_digest)
        if new.reference_dataset_digest:
            validate_digest(new.reference_dataset_digest)
        tags = validate_tags(new.tags)
        with self._store.transaction(write=True) as tx:
            artifact = artifact_of_kind(tx, new.artifact_digest, ArtifactKind.ONNX_MODEL)
            dataset = None
            if new.reference_dataset_digest:
                dataset = artifact_of_kind(tx, new.reference_dataset_digest, ArtifactKind.DATASET).dataset
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
            return existing_version(tx, validate_model_name(name), validate_version(version))

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
                existing_model(tx, query.model_name)
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
            version = existing_version(tx, name, number)
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
            current = existing_version(tx, version.model_name, version.version)
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
            version = existing_version(tx, name, number)
            if version.status is VersionStatus.ARCHIVED:
                return version
            pointing = sorted(alias for alias, v in tx.aliases_of(name).items() if v == number)
            if pointing:
                raise FailedPrecondition(f"{name} version {number} is named by aliases {pointing}: move them first")
            tx.set_status(name, number, VersionStatus.ARCHIVED, f"archived by {principal.name}")
            tx.record(convert.version_archived(version, principal.name))
            return existing_version(tx, name, number)
