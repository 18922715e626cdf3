"""MLflow 3's logged models: the model a run (or nothing) produced, with its own id, files, parameters, metrics and
tags, before any registration (`mlflow.<flavor>.log_model` creates one and uploads the flavor's files to it).
Registering `models:/<model_id>` (or `runs:/<run_id>/<name>`, which the client resolves to it) reads its ONNX file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from modelyard.registry.domain.errors import InvalidArgument
from modelyard.registry.domain.tracking import LifecycleStage, Metric, validate_artifact_path

_MODEL_ID = re.compile(r"^m-[0-9a-f]{32}$")
_RUN_ID = r"[0-9a-f]{32}"


class LoggedModelStatus(StrEnum):
    """MLflow's `LoggedModelStatus` names: PENDING until the client finalizes the upload."""

    PENDING = "LOGGED_MODEL_PENDING"
    READY = "LOGGED_MODEL_READY"
    UPLOAD_FAILED = "LOGGED_MODEL_UPLOAD_FAILED"


def validate_model_id(model_id: str) -> str:
    if not _MODEL_ID.fullmatch(model_id):
        raise InvalidArgument(f"invalid logged model id {model_id[:40]!r}: expected m-<32 lower-case hex digits>")
    return model_id


def is_model_id(owner: str) -> bool:
    """Whether a file owner's id names a logged model (`m-...`) rather than a run (32 hex digits)."""
    return owner.startswith("m-")


@dataclass(frozen=True)
class LoggedModel:
    model_id: str
    experiment_id: str
    name: str
    source_run_id: str
    status: LoggedModelStatus
    creator: str
    created_ms: int
    updated_ms: int
    model_type: str = ""
    status_message: str = ""
    lifecycle_stage: LifecycleStage = LifecycleStage.ACTIVE
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: tuple[Metric, ...] = ()

    @property
    def artifact_uri(self) -> str:
        """Where MLflow's clients put the model's files: the tracking server's artifact proxy, as MLflow's own
        server lays them out (`<experiment's location>/models/<model_id>/artifacts`)."""
        return f"mlflow-artifacts:/{self.experiment_id}/models/{self.model_id}/artifacts"


def logged_model_in(source: str) -> str:
    """The logged model id of a `models:/<model_id>` source, "" for any other source (a lineage's source may be
    anything a native registration said)."""
    match = re.fullmatch(r"models:/(m-[0-9a-f]{32})/?", source)
    return match[1] if match else ""


def file_source(source: str) -> tuple[str, str]:
    """(owner, path) of a model source: the owner is a run id or a logged model id (`m-...`), the path is inside
    its files ("" for all of them). Sources: `runs:/<run_id>/<path>`, `models:/<model_id>`, and their
    `mlflow-artifacts:/` URIs."""
    if match := re.fullmatch(rf"runs:/({_RUN_ID})/(.+)", source):
        return match[1], validate_artifact_path(match[2].strip("/"))
    if match := re.fullmatch(rf"mlflow-artifacts:/+[0-9]+/({_RUN_ID})/artifacts/(.+)", source):
        return match[1], validate_artifact_path(match[2].strip("/"))
    if model_id := logged_model_in(source):
        return model_id, ""
    if match := re.fullmatch(r"mlflow-artifacts:/+[0-9]+/models/(m-[0-9a-f]{32})/artifacts(?:/(.*))?", source):
        return match[1], validate_artifact_path(match[2].strip("/")) if match[2] and match[2].strip("/") else ""
    raise InvalidArgument(
        f"unsupported model source {source[:100]!r}: register a run's model as runs:/<run_id>/<path> or a logged "
        "model as models:/<model_id> (their files are on this server)"
    )


def proxied_file(proxied_path: str) -> tuple[str, str]:
    """(owner, path in its files) of a path under MLflow's artifact proxy: a run's
    `<experiment_id>/<run_id>/artifacts[/...]` or a logged model's `<experiment_id>/models/<model_id>/artifacts[/...]`
    (the path is empty for the root)."""
    match = re.fullmatch(
        rf"[0-9]+/(?:({_RUN_ID})|models/(m-[0-9a-f]{{32}}))/artifacts(?:/(.*))?", proxied_path.strip("/")
    )
    if match is None:
        raise InvalidArgument(
            f"artifact path {proxied_path[:100]!r} is not a run's or a logged model's: expected "
            "<experiment_id>/<run_id>/artifacts/<path> or <experiment_id>/models/<model_id>/artifacts/<path>"
        )
    path = match[3] or ""
    return match[1] or match[2], validate_artifact_path(path) if path else ""
