import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from modelyard.contracts.events.v1 import common_pb2 as _common_pb2
from modelyard.contracts.events.v1 import registry_events_pb2 as _registry_events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisteredModel(_message.Message):
    __slots__ = ("name", "description", "owner", "tags", "created_by", "created_at", "latest_version", "aliases")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AliasesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    owner: str
    tags: _containers.ScalarMap[str, str]
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    latest_version: int
    aliases: _containers.ScalarMap[str, int]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., owner: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latest_version: _Optional[int] = ..., aliases: _Optional[_Mapping[str, int]] = ...) -> None: ...

class TensorDim(_message.Message):
    __slots__ = ("value", "param")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    PARAM_FIELD_NUMBER: _ClassVar[int]
    value: int
    param: str
    def __init__(self, value: _Optional[int] = ..., param: _Optional[str] = ...) -> None: ...

class TensorShape(_message.Message):
    __slots__ = ("dims",)
    DIMS_FIELD_NUMBER: _ClassVar[int]
    dims: _containers.RepeatedCompositeFieldContainer[TensorDim]
    def __init__(self, dims: _Optional[_Iterable[_Union[TensorDim, _Mapping]]] = ...) -> None: ...

class TensorSpec(_message.Message):
    __slots__ = ("name", "element_type", "shape", "feature_names")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    name: str
    element_type: str
    shape: TensorShape
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., element_type: _Optional[str] = ..., shape: _Optional[_Union[TensorShape, _Mapping]] = ..., feature_names: _Optional[_Iterable[str]] = ...) -> None: ...

class Signature(_message.Message):
    __slots__ = ("inputs", "outputs", "opsets", "ir_version", "producer_name", "producer_version")
    class OpsetsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    OPSETS_FIELD_NUMBER: _ClassVar[int]
    IR_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_NAME_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_VERSION_FIELD_NUMBER: _ClassVar[int]
    inputs: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    outputs: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    opsets: _containers.ScalarMap[str, int]
    ir_version: int
    producer_name: str
    producer_version: str
    def __init__(self, inputs: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., opsets: _Optional[_Mapping[str, int]] = ..., ir_version: _Optional[int] = ..., producer_name: _Optional[str] = ..., producer_version: _Optional[str] = ...) -> None: ...

class Lineage(_message.Message):
    __slots__ = ("training_datasets", "evaluation_datasets", "code_revision", "parameters", "metrics", "environment", "run_id", "source")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class EnvironmentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TRAINING_DATASETS_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_DATASETS_FIELD_NUMBER: _ClassVar[int]
    CODE_REVISION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    training_datasets: _containers.RepeatedScalarFieldContainer[str]
    evaluation_datasets: _containers.RepeatedScalarFieldContainer[str]
    code_revision: str
    parameters: _containers.ScalarMap[str, str]
    metrics: _containers.ScalarMap[str, float]
    environment: _containers.ScalarMap[str, str]
    run_id: str
    source: str
    def __init__(self, training_datasets: _Optional[_Iterable[str]] = ..., evaluation_datasets: _Optional[_Iterable[str]] = ..., code_revision: _Optional[str] = ..., parameters: _Optional[_Mapping[str, str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., environment: _Optional[_Mapping[str, str]] = ..., run_id: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class DatasetSchema(_message.Message):
    __slots__ = ("columns", "rows")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedScalarFieldContainer[str]
    rows: int
    def __init__(self, columns: _Optional[_Iterable[str]] = ..., rows: _Optional[int] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("digest", "size_bytes", "media_type", "created_by", "created_at", "signature", "dataset")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    digest: str
    size_bytes: int
    media_type: str
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    signature: Signature
    dataset: DatasetSchema
    def __init__(self, digest: _Optional[str] = ..., size_bytes: _Optional[int] = ..., media_type: _Optional[str] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., signature: _Optional[_Union[Signature, _Mapping]] = ..., dataset: _Optional[_Union[DatasetSchema, _Mapping]] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("model_name", "version", "digest", "size_bytes", "media_type", "signature", "lineage", "reference_dataset_digest", "status", "status_message", "created_by", "created_at", "tags")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_DATASET_DIGEST_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    digest: str
    size_bytes: int
    media_type: str
    signature: Signature
    lineage: Lineage
    reference_dataset_digest: str
    status: _registry_events_pb2.ModelVersionStatus
    status_message: str
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    tags: _containers.ScalarMap[str, str]
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., digest: _Optional[str] = ..., size_bytes: _Optional[int] = ..., media_type: _Optional[str] = ..., signature: _Optional[_Union[Signature, _Mapping]] = ..., lineage: _Optional[_Union[Lineage, _Mapping]] = ..., reference_dataset_digest: _Optional[str] = ..., status: _Optional[_Union[_registry_events_pb2.ModelVersionStatus, str]] = ..., status_message: _Optional[str] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AliasMove(_message.Message):
    __slots__ = ("model_name", "alias", "from_version", "to_version", "moved_by", "moved_at", "reason")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    TO_VERSION_FIELD_NUMBER: _ClassVar[int]
    MOVED_BY_FIELD_NUMBER: _ClassVar[int]
    MOVED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    alias: str
    from_version: int
    to_version: int
    moved_by: str
    moved_at: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, model_name: _Optional[str] = ..., alias: _Optional[str] = ..., from_version: _Optional[int] = ..., to_version: _Optional[int] = ..., moved_by: _Optional[str] = ..., moved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ResolveAliasRequest(_message.Message):
    __slots__ = ("model_name", "alias", "as_of")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    alias: str
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, model_name: _Optional[str] = ..., alias: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ResolveAliasResponse(_message.Message):
    __slots__ = ("version", "model_version")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    version: _common_pb2.ModelVersionRef
    model_version: ModelVersion
    def __init__(self, version: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., model_version: _Optional[_Union[ModelVersion, _Mapping]] = ...) -> None: ...

class CreateRegisteredModelRequest(_message.Message):
    __slots__ = ("name", "description", "owner", "tags")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    owner: str
    tags: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., owner: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateRegisteredModelResponse(_message.Message):
    __slots__ = ("registered_model",)
    REGISTERED_MODEL_FIELD_NUMBER: _ClassVar[int]
    registered_model: RegisteredModel
    def __init__(self, registered_model: _Optional[_Union[RegisteredModel, _Mapping]] = ...) -> None: ...

class GetRegisteredModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetRegisteredModelResponse(_message.Message):
    __slots__ = ("registered_model",)
    REGISTERED_MODEL_FIELD_NUMBER: _ClassVar[int]
    registered_model: RegisteredModel
    def __init__(self, registered_model: _Optional[_Union[RegisteredModel, _Mapping]] = ...) -> None: ...

class ListRegisteredModelsRequest(_message.Message):
    __slots__ = ("name_contains", "tags", "page_size", "page_token")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name_contains: str
    tags: _containers.ScalarMap[str, str]
    page_size: int
    page_token: str
    def __init__(self, name_contains: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRegisteredModelsResponse(_message.Message):
    __slots__ = ("registered_models", "next_page_token")
    REGISTERED_MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    registered_models: _containers.RepeatedCompositeFieldContainer[RegisteredModel]
    next_page_token: str
    def __init__(self, registered_models: _Optional[_Iterable[_Union[RegisteredModel, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UploadArtifactRequest(_message.Message):
    __slots__ = ("header", "chunk")
    class Header(_message.Message):
        __slots__ = ("media_type", "digest", "size_bytes")
        MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
        DIGEST_FIELD_NUMBER: _ClassVar[int]
        SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
        media_type: str
        digest: str
        size_bytes: int
        def __init__(self, media_type: _Optional[str] = ..., digest: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadArtifactRequest.Header
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadArtifactRequest.Header, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadArtifactResponse(_message.Message):
    __slots__ = ("artifact",)
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ...) -> None: ...

class DownloadArtifactRequest(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: str
    def __init__(self, digest: _Optional[str] = ...) -> None: ...

class DownloadArtifactResponse(_message.Message):
    __slots__ = ("artifact", "chunk")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    chunk: bytes
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class FeatureNames(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateModelVersionRequest(_message.Message):
    __slots__ = ("model_name", "artifact_digest", "reference_dataset_digest", "feature_names", "label_column", "lineage", "tags")
    class FeatureNamesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FeatureNames
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FeatureNames, _Mapping]] = ...) -> None: ...
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_DATASET_DIGEST_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    LABEL_COLUMN_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    artifact_digest: str
    reference_dataset_digest: str
    feature_names: _containers.MessageMap[str, FeatureNames]
    label_column: str
    lineage: Lineage
    tags: _containers.ScalarMap[str, str]
    def __init__(self, model_name: _Optional[str] = ..., artifact_digest: _Optional[str] = ..., reference_dataset_digest: _Optional[str] = ..., feature_names: _Optional[_Mapping[str, FeatureNames]] = ..., label_column: _Optional[str] = ..., lineage: _Optional[_Union[Lineage, _Mapping]] = ..., tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateModelVersionResponse(_message.Message):
    __slots__ = ("model_version",)
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_version: ModelVersion
    def __init__(self, model_version: _Optional[_Union[ModelVersion, _Mapping]] = ...) -> None: ...

class GetModelVersionRequest(_message.Message):
    __slots__ = ("model_name", "version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetModelVersionResponse(_message.Message):
    __slots__ = ("model_version",)
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_version: ModelVersion
    def __init__(self, model_version: _Optional[_Union[ModelVersion, _Mapping]] = ...) -> None: ...

class ListModelVersionsRequest(_message.Message):
    __slots__ = ("model_name", "statuses", "digest", "tags", "page_size", "page_token")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    statuses: _containers.RepeatedScalarFieldContainer[_registry_events_pb2.ModelVersionStatus]
    digest: str
    tags: _containers.ScalarMap[str, str]
    page_size: int
    page_token: str
    def __init__(self, model_name: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[_registry_events_pb2.ModelVersionStatus, str]]] = ..., digest: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelVersionsResponse(_message.Message):
    __slots__ = ("model_versions", "next_page_token")
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    model_versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    next_page_token: str
    def __init__(self, model_versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ArchiveModelVersionRequest(_message.Message):
    __slots__ = ("model_name", "version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ArchiveModelVersionResponse(_message.Message):
    __slots__ = ("model_version",)
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_version: ModelVersion
    def __init__(self, model_version: _Optional[_Union[ModelVersion, _Mapping]] = ...) -> None: ...

class UpdateTagsRequest(_message.Message):
    __slots__ = ("model_name", "version", "set", "remove")
    class SetEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    set: _containers.ScalarMap[str, str]
    remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., set: _Optional[_Mapping[str, str]] = ..., remove: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateTagsResponse(_message.Message):
    __slots__ = ("tags",)
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.ScalarMap[str, str]
    def __init__(self, tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SetAliasRequest(_message.Message):
    __slots__ = ("model_name", "alias", "version", "reason")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    alias: str
    version: int
    reason: str
    def __init__(self, model_name: _Optional[str] = ..., alias: _Optional[str] = ..., version: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class SetAliasResponse(_message.Message):
    __slots__ = ("move",)
    MOVE_FIELD_NUMBER: _ClassVar[int]
    move: AliasMove
    def __init__(self, move: _Optional[_Union[AliasMove, _Mapping]] = ...) -> None: ...

class DeleteAliasRequest(_message.Message):
    __slots__ = ("model_name", "alias", "reason")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    alias: str
    reason: str
    def __init__(self, model_name: _Optional[str] = ..., alias: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DeleteAliasResponse(_message.Message):
    __slots__ = ("move",)
    MOVE_FIELD_NUMBER: _ClassVar[int]
    move: AliasMove
    def __init__(self, move: _Optional[_Union[AliasMove, _Mapping]] = ...) -> None: ...

class ListAliasHistoryRequest(_message.Message):
    __slots__ = ("model_name", "alias", "page_size", "page_token")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    alias: str
    page_size: int
    page_token: str
    def __init__(self, model_name: _Optional[str] = ..., alias: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAliasHistoryResponse(_message.Message):
    __slots__ = ("moves", "next_page_token")
    MOVES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    moves: _containers.RepeatedCompositeFieldContainer[AliasMove]
    next_page_token: str
    def __init__(self, moves: _Optional[_Iterable[_Union[AliasMove, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CollectGarbageRequest(_message.Message):
    __slots__ = ("delete",)
    DELETE_FIELD_NUMBER: _ClassVar[int]
    delete: bool
    def __init__(self, delete: _Optional[bool] = ...) -> None: ...

class StoredBlob(_message.Message):
    __slots__ = ("digest", "size_bytes", "modified_at")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    digest: str
    size_bytes: int
    modified_at: _timestamp_pb2.Timestamp
    def __init__(self, digest: _Optional[str] = ..., size_bytes: _Optional[int] = ..., modified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CollectGarbageResponse(_message.Message):
    __slots__ = ("blobs", "size_bytes", "deleted", "young_blobs", "grace_s")
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    YOUNG_BLOBS_FIELD_NUMBER: _ClassVar[int]
    GRACE_S_FIELD_NUMBER: _ClassVar[int]
    blobs: _containers.RepeatedCompositeFieldContainer[StoredBlob]
    size_bytes: int
    deleted: bool
    young_blobs: int
    grace_s: float
    def __init__(self, blobs: _Optional[_Iterable[_Union[StoredBlob, _Mapping]]] = ..., size_bytes: _Optional[int] = ..., deleted: _Optional[bool] = ..., young_blobs: _Optional[int] = ..., grace_s: _Optional[float] = ...) -> None: ...
