"""What every registry use case shares: the role sets, the policy, the ports, and lookups that raise NotFound."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from modelyard.auth import Role
from modelyard.registry.domain.errors import (
    InvalidArgument,
    NotFound,
)
from modelyard.registry.domain.model import (
    Artifact,
    ArtifactKind,
    ModelVersion,
)
from modelyard.registry.domain.ports import (
    ArtifactInspector,
    ArtifactStore,
    RegistryStore,
    RegistryTransaction,
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


def utc_now() -> datetime:
    return datetime.now(UTC)


class UseCases:
    """The ports and policy the use cases work with; synchronous methods do blocking database and file work, so
    async transports call them in a worker thread."""

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


def existing_model(tx: RegistryTransaction, name: str) -> None:
    if not tx.model_exists(name):
        raise NotFound(f"model {name!r} not found")


def existing_version(tx: RegistryTransaction, name: str, number: int) -> ModelVersion:
    version = tx.get_version(name, number)
    if version is None:
        existing_model(tx, name)
        raise NotFound(f"model {name!r} has no version {number}")
    return version


def artifact_of_kind(tx: RegistryTransaction, digest: str, kind: ArtifactKind) -> Artifact:
    artifact = tx.get_artifact(digest)
    if artifact is None:
        raise NotFound(f"artifact {digest} not found: upload it first")
    if artifact.media_type.kind is not kind:
        raise InvalidArgument(f"artifact {digest} is {artifact.media_type.value}, not a {kind.value}")
    return artifact
