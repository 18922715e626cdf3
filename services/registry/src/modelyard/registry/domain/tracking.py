"""Experiment tracking value objects: experiments, runs, their parameters, metric history, tags, dataset inputs and
artifacts. Times are milliseconds since the epoch, as MLflow's clients send and expect them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

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


S = TypeVar("S", bound=StrEnum)


def parse_status(kind: type[S], value: str, what: str) -> S:
    """A status the client sent, or InvalidArgument naming the ones there are."""
    try:
        return kind(value)
    except ValueError:
        raise InvalidArgument(f"invalid {what} {value[:40]!r}; expected one of: {', '.join(kind)}") from None


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


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
    model_id: str = ""  # MLflow 3: the logged model the value is about (the run's history has it too)

    def validated(self) -> Metric:
        validate_key(self.key, "metric")
        if not isinstance(self.value, float | int) or isinstance(self.value, bool):
            raise InvalidArgument(f"metric {self.key!r}: value must be a number")
        return Metric(self.key, float(self.value), int(self.timestamp_ms), int(self.step), self.model_id)

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
class ModelOutput:
    """A logged model a run produced, at a step (MLflow 3's run outputs)."""

    model_id: str
    step: int = 0


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
    outputs: tuple[ModelOutput, ...] = ()

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
