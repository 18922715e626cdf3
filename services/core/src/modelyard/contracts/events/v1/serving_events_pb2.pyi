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

class TensorColumn(_message.Message):
    __slots__ = ("name", "datatype", "rank", "shapes", "counts", "data", "strings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATATYPE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    SHAPES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    datatype: str
    rank: int
    shapes: bytes
    counts: bytes
    data: bytes
    strings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., datatype: _Optional[str] = ..., rank: _Optional[int] = ..., shapes: _Optional[bytes] = ..., counts: _Optional[bytes] = ..., data: _Optional[bytes] = ..., strings: _Optional[_Iterable[str]] = ...) -> None: ...

class PredictionBatch(_message.Message):
    __slots__ = ("model_name", "version", "request_ids", "time_unix_nano", "latency_ms", "status_codes", "traceparents", "inputs", "outputs", "plan_revisions")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_IDS_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODES_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENTS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    PLAN_REVISIONS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: _common_pb2.ModelVersionRef
    request_ids: _containers.RepeatedScalarFieldContainer[str]
    time_unix_nano: bytes
    latency_ms: bytes
    status_codes: bytes
    traceparents: _containers.RepeatedScalarFieldContainer[str]
    inputs: _containers.RepeatedCompositeFieldContainer[TensorColumn]
    outputs: _containers.RepeatedCompositeFieldContainer[TensorColumn]
    plan_revisions: bytes
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., request_ids: _Optional[_Iterable[str]] = ..., time_unix_nano: _Optional[bytes] = ..., latency_ms: _Optional[bytes] = ..., status_codes: _Optional[bytes] = ..., traceparents: _Optional[_Iterable[str]] = ..., inputs: _Optional[_Iterable[_Union[TensorColumn, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[TensorColumn, _Mapping]]] = ..., plan_revisions: _Optional[bytes] = ...) -> None: ...
