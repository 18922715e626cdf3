"""The registry use cases: check access, validate, change state and record its events in one transaction.

One module per use case group (models, artifacts, versions, aliases, experiment tracking, logged models, the files
of runs and logged models) over the ports and policy of `base`; `RegistryHandlers` is all of them over one store,
which is what the transports and tests work with.
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
from modelyard.registry.handlers.logged_models import LoggedModelUseCases, NewLoggedModel, logged_model_order
from modelyard.registry.handlers.models import ModelUseCases
from modelyard.registry.handlers.tracked_files import FileEntry, TrackedFileUseCases
from modelyard.registry.handlers.tracking import RunLog, RunQuery
from modelyard.registry.handlers.versions import NewVersion, VersionQuery, VersionUseCases


class RegistryHandlers(
    ModelUseCases, TrackedFileUseCases, ArtifactUseCases, VersionUseCases, AliasUseCases, LoggedModelUseCases
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
    "NewLoggedModel",
    "NewVersion",
    "RegistryHandlers",
    "RegistryPolicy",
    "RunLog",
    "RunQuery",
    "VersionQuery",
    "logged_model_order",
]
