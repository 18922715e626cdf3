import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from modelyard.contracts.events.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelLoaded(_message.Message):
    __slots__ = ("version", "replica", "warmup_ms")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    WARMUP_MS_FIELD_NUMBER: _ClassVar[int]
    version: _common_pb2.ModelVersionRef
    replica: str
    warmup_ms: float
    def __init__(self, version: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., replica: _Optional[str] = ..., warmup_ms: _Optional[float] = ...) -> None: ...

class ModelLoadFailed(_message.Message):
    __slots__ = ("version", "replica", "reason")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    version: _common_pb2.ModelVersionRef
    replica: str
    reason: str
    def __init__(self, version: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., replica: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ModelUnloaded(_message.Message):
    __slots__ = ("version", "replica")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    version: _common_pb2.ModelVersionRef
    replica: str
    def __init__(self, version: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., replica: _Optional[str] = ...) -> None: ...

class PredictionTensor(_message.Message):
    __slots__ = ("name", "shape", "values", "strings", "truncated")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    strings: _containers.RepeatedScalarFieldContainer[str]
    truncated: bool
    def __init__(self, name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[float]] = ..., strings: _Optional[_Iterable[str]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class PredictionRecord(_message.Message):
    __slots__ = ("request_id", "version", "timestamp", "inputs", "outputs", "latency_ms", "status_code", "traceparent", "plan_revision")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    PLAN_REVISION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    version: _common_pb2.ModelVersionRef
    timestamp: _timestamp_pb2.Timestamp
    inputs: _containers.RepeatedCompositeFieldContainer[PredictionTensor]
    outputs: _containers.RepeatedCompositeFieldContainer[PredictionTensor]
    latency_ms: float
    status_code: int
    traceparent: str
    plan_revision: int
    def __init__(self, request_id: _Optional[str] = ..., version: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., inputs: _Optional[_Iterable[_Union[PredictionTensor, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[PredictionTensor, _Mapping]]] = ..., latency_ms: _Optional[float] = ..., status_code: _Optional[int] = ..., traceparent: _Optional[str] = ..., plan_revision: _Optional[int] = ...) -> None: ...

class PredictionBatch(_message.Message):
    __slots__ = ("model_name", "records")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    records: _containers.RepeatedCompositeFieldContainer[PredictionRecord]
    def __init__(self, model_name: _Optional[str] = ..., records: _Optional[_Iterable[_Union[PredictionRecord, _Mapping]]] = ...) -> None: ...
