"""Experiment tracking value objects: experiments, runs, their parameters, metric history, tags, dataset inputs and
artifacts. Times are milliseconds since the epoch, as MLflow's clients send and expect them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from modelyard.registry.domain.errors import InvalidArgument

# MLflow's limits, so that what its client accepts we accept too.
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_EXPERIMENT_NAME = 500
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
_KEY = re.compile(r"^[\w\-. /:]{1,250}$")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_EXPERIMENT_ID = re.compile(r"^[0-9]{1,18}$")
# Tags the MLflow client sets on every run: where the code came from.
SOURCE_TAG = "mlflow.source.name"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
RUN_NAME_TAG = "mlflow.runName"
DEFAULT_EXPERIMENT_ID = "0"


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @classmethod
    def parse(cls, value: str) -> RunStatus:
        try:
            return cls(value)
        except ValueError:
            raise InvalidArgument(f"invalid run status {value!r}; expected one of: {', '.join(cls)}") from None


class LifecycleStage(StrEnum):
    ACTIVE = "active"
    DELETED = "deleted"


def validate_key(key: str, what: str) -> str:
    if not _KEY.fullmatch(key) or key.startswith("/") or ".." in key.split("/"):
        raise InvalidArgument(
            f"invalid {what} name {key[:MAX_KEY]!r}: 1-{MAX_KEY} letters, digits, '_', '-', '.', ' ', '/' or ':'"
        )
    return key


def validate_value(value: str, limit: int, what: str) -> str:
    if len(value) > limit:
        raise InvalidArgument(f"{what} value longer than {limit} characters")
    return value


def validate_run_id(run_id: str) -> str:
    if not _RUN_ID.fullmatch(run_id):
        raise InvalidArgument(f"invalid run id {run_id[:40]!r}: expected 32 lower-case hex digits")
    return run_id


def validate_experiment_id(experiment_id: str) -> str:
    if not _EXPERIMENT_ID.fullmatch(experiment_id):
        raise InvalidArgument(f"invalid experiment id {experiment_id[:40]!r}: expected a number")
    return experiment_id


def validate_experiment_name(name: str) -> str:
    if not name.strip() or len(name) > MAX_EXPERIMENT_NAME:
        raise InvalidArgument(f"experiment names have 1-{MAX_EXPERIMENT_NAME} characters, not only spaces")
    return name


def validate_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {validate_key(k, "tag"): validate_value(v, MAX_TAG_VALUE, "tag") for k, v in tags.items()}


def validate_artifact_path(path: str) -> str:
    """A relative path inside a run's artifacts: no absolute paths, no '..', no empty segments."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts) or len(path) > 1024:
        raise InvalidArgument(f"invalid artifact path {path[:80]!r}: a relative path without '.' or '..' segments")
    return path


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: LifecycleStage
    created_ms: int
    updated_ms: int
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    timestamp_ms: int
    step: int = 0

    def validated(self) -> Metric:
        validate_key(self.key, "metric")
        if not isinstance(self.value, float | int) or isinstance(self.value, bool):
            raise InvalidArgument(f"metric {self.key!r}: value must be a number")
        return Metric(self.key, float(self.value), int(self.timestamp_ms), int(self.step))

    def is_after(self, other: Metric) -> bool:
        """Whether this value supersedes `other` as the metric's latest (MLflow's rule: step, then time, then value;
        NaN sorts below every number)."""
        mine = (self.step, self.timestamp_ms, not math.isnan(self.value), self.value)
        theirs = (other.step, other.timestamp_ms, not math.isnan(other.value), other.value)
        return mine >= theirs


@dataclass(frozen=True)
class DatasetInput:
    """A dataset a run read, by digest (MLflow's, or a Modelyard artifact's `sha256:...`)."""

    digest: str
    name: str
    context: str = ""  # "training", "evaluation", ... (MLflow's `mlflow.data.context` input tag)
    source_type: str = ""
    source: str = ""
    schema: str = ""
    profile: str = ""


@dataclass(frozen=True)
class RunArtifact:
    """A file of a run, stored by digest in the content-addressed artifact store."""

    path: str
    digest: str
    size_bytes: int


@dataclass(frozen=True)
class Run:
    run_id: str
    experiment_id: str
    name: str
    status: RunStatus
    user: str
    start_ms: int
    end_ms: int | None
    lifecycle_stage: LifecycleStage = LifecycleStage.ACTIVE
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, Metric] = field(default_factory=dict)  # the latest value of each
    tags: Mapping[str, str] = field(default_factory=dict)
    inputs: tuple[DatasetInput, ...] = ()

    @property
    def source(self) -> str:
        return self.tags.get(SOURCE_TAG, "")

    @property
    def git_commit(self) -> str:
        return self.tags.get(GIT_COMMIT_TAG, "")

    @property
    def artifact_uri(self) -> str:
        """Where MLflow's clients put the run's files: the tracking server's artifact proxy."""
        return f"mlflow-artifacts:/{self.experiment_id}/{self.run_id}/artifacts"


def run_id_in_source(source: str) -> tuple[str, str]:
    """(run id, artifact path) of a model source: `runs:/<run_id>/<path>` or the run's artifact URI and a path."""
    if match := re.fullmatch(r"runs:/([0-9a-f]{32})/(.+)", source):
        return match[1], validate_artifact_path(match[2].strip("/"))
    if match := re.fullmatch(r"mlflow-artifacts:/+[0-9]+/([0-9a-f]{32})/artifacts/(.+)", source):
        return match[1], validate_artifact_path(match[2].strip("/"))
    raise InvalidArgument(
        f"unsupported model source {source[:100]!r}: register a run's model as runs:/<run_id>/<path> "
        "(the run's files are on this server)"
    )


def run_file(proxied_path: str) -> tuple[str, str]:
    """(run id, path in the run) of a path under MLflow's artifact proxy: `<experiment_id>/<run_id>/artifacts[/...]`
    (the path is empty for the run's root)."""
    match = re.fullmatch(r"[0-9]+/([0-9a-f]{32})/artifacts(?:/(.*))?", proxied_path.strip("/"))
    if match is None:
        raise InvalidArgument(
            f"artifact path {proxied_path[:100]!r} is not a run's: expected <experiment_id>/<run_id>/artifacts/<path>"
        )
    path = match[2] or ""
    return match[1], validate_artifact_path(path) if path else ""
