from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelVersionRef(_message.Message):
    __slots__ = ("model_name", "version", "digest")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    digest: str
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., digest: _Optional[str] = ...) -> None: ...

class DeploymentPlan(_message.Message):
    __slots__ = ("model_name", "primary", "canary", "canary_weight", "shadow", "revision")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    CANARY_FIELD_NUMBER: _ClassVar[int]
    CANARY_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    primary: ModelVersionRef
    canary: ModelVersionRef
    canary_weight: float
    shadow: ModelVersionRef
    revision: int
    def __init__(self, model_name: _Optional[str] = ..., primary: _Optional[_Union[ModelVersionRef, _Mapping]] = ..., canary: _Optional[_Union[ModelVersionRef, _Mapping]] = ..., canary_weight: _Optional[float] = ..., shadow: _Optional[_Union[ModelVersionRef, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...
