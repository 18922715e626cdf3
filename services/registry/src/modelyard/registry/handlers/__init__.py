"""The registry use cases: check access, validate, change state and record its events in one transaction.

One module per use case group (models, artifacts, versions, aliases, experiment tracking, a run's files) over
the ports and policy of `base`; `RegistryHandlers` is all of them over one store, which is what the transports
and tests work with.
"""

from __future__ import annotations

from modelyard.registry.handlers.aliases import AliasUseCases
from modelyard.registry.handlers.artifacts import ArtifactUseCases
from modelyard.registry.handlers.base import (
    ADMINISTER,
    LATEST,
    MOVE_ALIAS,
    MOVE_PROTECTED_ALIAS,
    PUBLISH,
    READ,
    RegistryPolicy,
)
from modelyard.registry.handlers.models import ModelUseCases
from modelyard.registry.handlers.run_files import FileEntry, RunFileUseCases
from modelyard.registry.handlers.tracking import RunLog, RunQuery, TrackingUseCases
from modelyard.registry.handlers.versions import NewVersion, VersionQuery, VersionUseCases


class RegistryHandlers(
    ModelUseCases, RunFileUseCases, ArtifactUseCases, VersionUseCases, AliasUseCases, TrackingUseCases
):
    """Every registry use case, over one store, artifact store, inspector and policy."""


__all__ = [
    "ADMINISTER",
    "LATEST",
    "MOVE_ALIAS",
    "MOVE_PROTECTED_ALIAS",
    "PUBLISH",
    "READ",
    "FileEntry",
    "NewVersion",
    "RegistryHandlers",
    "RegistryPolicy",
    "RunLog",
    "RunQuery",
    "VersionQuery",
]
