"""The registry's access table: who may call each method (gRPC) and its REST route of the same name.

The role sets are the handlers' own (`READ`, `PUBLISH`, ...), so the edge and the use cases cannot disagree; the
handlers still decide what depends on the request (only approvers and services move a protected alias).
"""

from __future__ import annotations

from modelyard.access import ANY_ROLE, Rule, roles
from modelyard.registry.handlers import ADMINISTER, MOVE_ALIAS, MOVE_PROTECTED_ALIAS, PUBLISH, READ

MLFLOW_WRITES = (
    "createExperiment",
    "setExperimentTag",
    "createRun",
    "updateRun",
    "deleteRun",
    "restoreRun",
    "logBatch",
    "logMetric",
    "logParam",
    "setTag",
    "deleteTag",
    "logInputs",
    "logOutputs",
    "createLoggedModel",
    "finalizeLoggedModel",
    "deleteLoggedModel",
    "setLoggedModelTags",
    "deleteLoggedModelTag",
    "logLoggedModelParams",
    "uploadArtifact",
    "createRegisteredModel",
    "setRegisteredModelTag",
    "createModelVersion",
    "setModelVersionTag",
)
MLFLOW_READS = (
    "getExperiment",
    "getExperimentByName",
    "searchExperiments",
    "getRun",
    "searchRuns",
    "getMetricHistory",
    "searchLoggedModels",
    "getLoggedModel",
    "listLoggedModelArtifacts",
    "downloadArtifact",
    "listArtifacts",
    "getRegisteredModel",
    "searchRegisteredModels",
    "getModelVersion",
    "searchModelVersions",
    "getModelVersionDownloadUri",
    "getModelVersionByAlias",
)

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
    # Experiment tracking, ours (REST) and MLflow's API (routes named "mlflow:<MLflow's RPC name>").
    "ListRuns": roles(READ),
    "GetRun": roles(READ),
    "GetMetricHistory": roles(READ),
    **{f"mlflow:{call}": roles(PUBLISH) for call in MLFLOW_WRITES},
    **{f"mlflow:{call}": roles(READ) for call in MLFLOW_READS},
    "mlflow:setRegisteredModelAlias": roles(MOVE_ALIAS),
    "mlflow:deleteRegisteredModelAlias": roles(MOVE_ALIAS),
    # Every other MLflow path: answered ENDPOINT_NOT_FOUND, to any authenticated caller.
    "mlflow:unsupported": ANY_ROLE,
}
