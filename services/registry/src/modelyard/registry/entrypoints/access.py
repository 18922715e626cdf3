"""The registry's access table: who may call each method (gRPC) and its REST route of the same name.

The role sets are the handlers' own (`READ`, `PUBLISH`, ...), so the edge and the use cases cannot disagree; the
handlers still decide what depends on the request (only approvers and services move a protected alias).
"""

from __future__ import annotations

from modelyard.access import Rule, roles
from modelyard.registry.handlers import ADMINISTER, MOVE_ALIAS, MOVE_PROTECTED_ALIAS, PUBLISH, READ

ACCESS: dict[str, Rule] = {
    "CreateRegisteredModel": roles(PUBLISH),
    "GetRegisteredModel": roles(READ),
    "ListRegisteredModels": roles(READ),
    "UploadArtifact": roles(PUBLISH),
    "DownloadArtifact": roles(READ),
    "CreateModelVersion": roles(PUBLISH),
    "GetModelVersion": roles(READ),
    "ListModelVersions": roles(READ),
    "ArchiveModelVersion": roles(MOVE_ALIAS),
    "UpdateTags": roles(PUBLISH),
    "SetAlias": roles(MOVE_ALIAS, MOVE_PROTECTED_ALIAS),
    "DeleteAlias": roles(MOVE_ALIAS, MOVE_PROTECTED_ALIAS),
    "ResolveAlias": roles(READ),
    "ListAliasHistory": roles(READ),
    "CollectGarbage": roles(ADMINISTER),
}
