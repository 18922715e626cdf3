from modelyard.contracts.inference import grpc_service_pb2 as _grpc_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClassSelection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLASS_SELECTION_UNSPECIFIED: _ClassVar[ClassSelection]
    CLASS_SELECTION_PREDICTED: _ClassVar[ClassSelection]
    CLASS_SELECTION_ALL: _ClassVar[ClassSelection]
    CLASS_SELECTION_INDEX: _ClassVar[ClassSelection]
CLASS_SELECTION_UNSPECIFIED: ClassSelection
CLASS_SELECTION_PREDICTED: ClassSelection
CLASS_SELECTION_ALL: ClassSelection
CLASS_SELECTION_INDEX: ClassSelection

class ExplainRequest(_message.Message):
    __slots__ = ("inputs", "output", "classes", "class_index")
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    inputs: _grpc_service_pb2.ModelInferRequest
    output: str
    classes: ClassSelection
    class_index: int
    def __init__(self, inputs: _Optional[_Union[_grpc_service_pb2.ModelInferRequest, _Mapping]] = ..., output: _Optional[str] = ..., classes: _Optional[_Union[ClassSelection, str]] = ..., class_index: _Optional[int] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("model_name", "model_version", "id", "output", "feature_names", "rows", "method", "background_rows", "background_source")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_ROWS_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_SOURCE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    id: str
    output: str
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    rows: _containers.RepeatedCompositeFieldContainer[RowExplanation]
    method: str
    background_rows: int
    background_source: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., id: _Optional[str] = ..., output: _Optional[str] = ..., feature_names: _Optional[_Iterable[str]] = ..., rows: _Optional[_Iterable[_Union[RowExplanation, _Mapping]]] = ..., method: _Optional[str] = ..., background_rows: _Optional[int] = ..., background_source: _Optional[str] = ...) -> None: ...

class RowExplanation(_message.Message):
    __slots__ = ("outputs",)
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[OutputExplanation]
    def __init__(self, outputs: _Optional[_Iterable[_Union[OutputExplanation, _Mapping]]] = ...) -> None: ...

class OutputExplanation(_message.Message):
    __slots__ = ("index", "base_value", "prediction", "attributions")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BASE_VALUE_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    index: int
    base_value: float
    prediction: float
    attributions: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, index: _Optional[int] = ..., base_value: _Optional[float] = ..., prediction: _Optional[float] = ..., attributions: _Optional[_Iterable[float]] = ...) -> None: ...
