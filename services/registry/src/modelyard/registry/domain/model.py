"""Registry value objects: registered models, versions, signatures, lineage, aliases and their history."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from modelyard.registry.domain.errors import InvalidArgument

# Names appear in URLs, Kafka keys and file paths: keep them boring.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_TAG_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_TAG_VALUE = 1024
MAX_DESCRIPTION = 10_000
MAX_VERSION = 2**63 - 1  # int64 in the protos and the database


def validate_model_name(name: str) -> str:
    if not _MODEL_NAME.fullmatch(name):
        raise InvalidArgument(
            f"invalid model name {name!r}: 1-128 characters, letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def validate_alias(alias: str) -> str:
    if not _ALIAS.fullmatch(alias):
        raise InvalidArgument(
            f"invalid alias {alias!r}: 1-64 characters, lower-case letters, digits, '_' or '-', starting with a letter"
        )
    if alias == "latest":
        raise InvalidArgument("'latest' is reserved: it always names the newest version")
    return alias


def validate_version(version: int) -> int:
    if version < 1:
        raise InvalidArgument(f"invalid version {version}: versions start at 1")
    if version > MAX_VERSION:
        raise InvalidArgument(f"invalid version: versions are 64-bit numbers, at most {MAX_VERSION}")
    return version


def validate_digest(digest: str) -> str:
    if not _DIGEST.fullmatch(digest):
        raise InvalidArgument(f"invalid digest {digest!r}: expected 'sha256:' and 64 lower-case hex digits")
    return digest


def validate_tags(tags: Mapping[str, str]) -> dict[str, str]:
    for key, value in tags.items():
        if not _TAG_KEY.fullmatch(key):
            raise InvalidArgument(f"invalid tag key {key!r}")
        if len(value) > MAX_TAG_VALUE:
            raise InvalidArgument(f"tag {key!r}: value longer than {MAX_TAG_VALUE} characters")
    return dict(tags)


def validate_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise InvalidArgument(f"description longer than {MAX_DESCRIPTION} characters")
    return description


class VersionStatus(StrEnum):
    PENDING_REGISTRATION = "PENDING_REGISTRATION"
    READY = "READY"
    FAILED_REGISTRATION = "FAILED_REGISTRATION"
    ARCHIVED = "ARCHIVED"


class ArtifactKind(StrEnum):
    ONNX_MODEL = "onnx_model"
    DATASET = "dataset"


class MediaType(StrEnum):
    """What an uploaded artifact claims to be; ingestion checks the claim."""

    ONNX = "application/onnx"
    # A tar of one .onnx file and the external-data files it references.
    ONNX_BUNDLE = "application/x-onnx-bundle+tar"
    CSV = "text/csv"
    PARQUET = "application/vnd.apache.parquet"

    @property
    def kind(self) -> ArtifactKind:
        return ArtifactKind.ONNX_MODEL if self in (MediaType.ONNX, MediaType.ONNX_BUNDLE) else ArtifactKind.DATASET

    @classmethod
    def parse(cls, value: str) -> MediaType:
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise InvalidArgument(f"unknown media type {value!r}; expected one of: {known}") from None


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: name, ONNX element type (e.g. "FLOAT") and shape.

    A dimension is an int when fixed, a string when symbolic (e.g. "batch"), None when unknown.
    """

    name: str
    element_type: str
    shape: tuple[int | str | None, ...] | None


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opsets: Mapping[str, int]
    ir_version: int
    producer_name: str
    producer_version: str


@dataclass(frozen=True)
class DatasetSchema:
    columns: tuple[str, ...]
    rows: int


@dataclass(frozen=True)
class Artifact:
    digest: str
    size_bytes: int
    media_type: MediaType
    created_by: str
    created_at: datetime
    signature: Signature | None = None
    dataset: DatasetSchema | None = None


@dataclass(frozen=True)
class Lineage:
    """Enough to reproduce a model: data, code, parameters, results and environment."""

    training_datasets: tuple[str, ...] = ()
    evaluation_datasets: tuple[str, ...] = ()
    code_revision: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    # The experiment-tracking run that produced the model, and where in its files the model was.
    run_id: str = ""
    source: str = ""


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str
    owner: str
    tags: Mapping[str, str]
    created_by: str
    created_at: datetime
    latest_version: int = 0
    # Alias -> version it names now.
    aliases: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersion:
    model_name: str
    version: int
    digest: str
    size_bytes: int
    media_type: MediaType
    signature: Signature
    lineage: Lineage
    feature_names: Mapping[str, tuple[str, ...]]
    reference_dataset_digest: str
    status: VersionStatus
    status_message: str
    created_by: str
    created_at: datetime
    tags: Mapping[str, str]
    aliases: tuple[str, ...] = ()  # the aliases naming this version when it was read, by name


@dataclass(frozen=True)
class AliasMove:
    """One entry of an alias's history; `from_version`/`to_version` are None when it did not exist / was deleted."""

    model_name: str
    alias: str
    from_version: int | None
    to_version: int | None
    moved_by: str
    moved_at: datetime
    reason: str


# Reference dataset columns the monitor reads as the model's outputs and the rows' ground truth (docs/monitor.md).
NOT_FEATURE_PREFIXES = ("output:", "truth:")


def derive_feature_names(
    signature: Signature,
    given: Mapping[str, tuple[str, ...]],
    dataset: DatasetSchema | None,
    label_column: str,
) -> dict[str, tuple[str, ...]]:
    """Feature names per input: the ones given, else the reference dataset's columns (minus the label and the
    monitor's `output:`/`truth:` columns, which describe the model's answers, not its inputs) for a model with a
    single 2-D input. Checked against the input's column count when it is fixed."""
    inputs = {spec.name: spec for spec in signature.inputs}
    names = {key: tuple(value) for key, value in given.items()}
    if not names and dataset is not None and len(inputs) == 1:
        columns = tuple(c for c in dataset.columns if c != label_column and not c.startswith(NOT_FEATURE_PREFIXES))
        names = {next(iter(inputs)): columns}
    for input_name, columns in names.items():
        spec = inputs.get(input_name)
        if spec is None:
            raise InvalidArgument(f"feature names given for unknown input {input_name!r}; inputs: {sorted(inputs)}")
        width = spec.shape[-1] if spec.shape else None
        if isinstance(width, int) and width != len(columns):
            raise InvalidArgument(
                f"input {input_name!r} has {width} columns but {len(columns)} feature names were given or found"
            )
        if len(set(columns)) != len(columns):
            raise InvalidArgument(f"input {input_name!r}: duplicate feature names")
    return names


@dataclass(frozen=True)
class StoredBlob:
    """A blob in the artifact store, as garbage collection sees it: `modified_at` is when its bytes were last
    stored (a deduplicated upload of the same bytes counts), so a blob an upload is about to reference is young."""

    digest: str
    size_bytes: int
    modified_at: datetime


@dataclass(frozen=True)
class GarbageReport:
    """What one garbage collection found: the unreferenced blobs older than the grace period (deleted unless it
    was a dry run) and how many unreferenced ones it left alone because they are younger."""

    blobs: tuple[StoredBlob, ...]
    deleted: bool
    young_blobs: int
    grace_s: float

    @property
    def size_bytes(self) -> int:
        return sum(blob.size_bytes for blob in self.blobs)
