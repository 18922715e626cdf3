import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from modelyard.contracts.events.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelVersionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_VERSION_STATUS_UNSPECIFIED: _ClassVar[ModelVersionStatus]
    MODEL_VERSION_STATUS_PENDING_REGISTRATION: _ClassVar[ModelVersionStatus]
    MODEL_VERSION_STATUS_READY: _ClassVar[ModelVersionStatus]
    MODEL_VERSION_STATUS_FAILED_REGISTRATION: _ClassVar[ModelVersionStatus]
    MODEL_VERSION_STATUS_ARCHIVED: _ClassVar[ModelVersionStatus]
MODEL_VERSION_STATUS_UNSPECIFIED: ModelVersionStatus
MODEL_VERSION_STATUS_PENDING_REGISTRATION: ModelVersionStatus
MODEL_VERSION_STATUS_READY: ModelVersionStatus
MODEL_VERSION_STATUS_FAILED_REGISTRATION: ModelVersionStatus
MODEL_VERSION_STATUS_ARCHIVED: ModelVersionStatus

class RegisteredModelCreated(_message.Message):
    __slots__ = ("model_name", "description", "owner", "tags", "created_by", "created_at")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    description: str
    owner: str
    tags: _containers.ScalarMap[str, str]
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, model_name: _Optional[str] = ..., description: _Optional[str] = ..., owner: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ModelVersionRegistered(_message.Message):
    __slots__ = ("version", "size_bytes", "created_by", "created_at", "reference_dataset_digest")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_DATASET_DIGEST_FIELD_NUMBER: _ClassVar[int]
    version: _common_pb2.ModelVersionRef
    size_bytes: int
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    reference_dataset_digest: str
    def __init__(self, version: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., size_bytes: _Optional[int] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reference_dataset_digest: _Optional[str] = ...) -> None: ...

class ModelVersionStatusChanged(_message.Message):
    __slots__ = ("version", "previous_status", "status", "status_message")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    version: _common_pb2.ModelVersionRef
    previous_status: ModelVersionStatus
    status: ModelVersionStatus
    status_message: str
    def __init__(self, version: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., previous_status: _Optional[_Union[ModelVersionStatus, str]] = ..., status: _Optional[_Union[ModelVersionStatus, str]] = ..., status_message: _Optional[str] = ...) -> None: ...

class AliasMoved(_message.Message):
    __slots__ = ("model_name", "alias", "from_version", "to_version", "moved_by", "reason")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    TO_VERSION_FIELD_NUMBER: _ClassVar[int]
    MOVED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    alias: str
    from_version: int
    to_version: int
    moved_by: str
    reason: str
    def __init__(self, model_name: _Optional[str] = ..., alias: _Optional[str] = ..., from_version: _Optional[int] = ..., to_version: _Optional[int] = ..., moved_by: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class TagsChanged(_message.Message):
    __slots__ = ("model_name", "version", "tags", "changed_by")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CHANGED_BY_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    tags: _containers.ScalarMap[str, str]
    changed_by: str
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., tags: _Optional[_Mapping[str, str]] = ..., changed_by: _Optional[str] = ...) -> None: ...

class ModelVersionArchived(_message.Message):
    __slots__ = ("version", "archived_by")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_BY_FIELD_NUMBER: _ClassVar[int]
    version: _common_pb2.ModelVersionRef
    archived_by: str
    def __init__(self, version: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., archived_by: _Optional[str] = ...) -> None: ...
