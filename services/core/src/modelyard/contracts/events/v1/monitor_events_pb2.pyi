import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from modelyard.contracts.events.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Signal(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNAL_UNSPECIFIED: _ClassVar[Signal]
    SIGNAL_DATA_DRIFT: _ClassVar[Signal]
    SIGNAL_PREDICTION_DRIFT: _ClassVar[Signal]
    SIGNAL_PERFORMANCE: _ClassVar[Signal]
    SIGNAL_DATA_QUALITY: _ClassVar[Signal]
    SIGNAL_LATENCY: _ClassVar[Signal]
    SIGNAL_ERROR_RATE: _ClassVar[Signal]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_WARNING: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]
SIGNAL_UNSPECIFIED: Signal
SIGNAL_DATA_DRIFT: Signal
SIGNAL_PREDICTION_DRIFT: Signal
SIGNAL_PERFORMANCE: Signal
SIGNAL_DATA_QUALITY: Signal
SIGNAL_LATENCY: Signal
SIGNAL_ERROR_RATE: Signal
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_WARNING: Severity
SEVERITY_CRITICAL: Severity

class FeedbackReceived(_message.Message):
    __slots__ = ("request_id", "model_name", "label", "target", "event_time")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model_name: str
    label: str
    target: float
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., model_name: _Optional[str] = ..., label: _Optional[str] = ..., target: _Optional[float] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FeedbackBatch(_message.Message):
    __slots__ = ("model_name", "request_ids", "labels", "targets", "time_unix_nano")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_IDS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    request_ids: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.RepeatedScalarFieldContainer[str]
    targets: bytes
    time_unix_nano: bytes
    def __init__(self, model_name: _Optional[str] = ..., request_ids: _Optional[_Iterable[str]] = ..., labels: _Optional[_Iterable[str]] = ..., targets: _Optional[bytes] = ..., time_unix_nano: _Optional[bytes] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("feature", "statistic", "value", "p_value", "threshold", "effect_size", "n_reference", "n_current", "window_start", "window_end")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    EFFECT_SIZE_FIELD_NUMBER: _ClassVar[int]
    N_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    N_CURRENT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    feature: str
    statistic: str
    value: float
    p_value: float
    threshold: float
    effect_size: float
    n_reference: int
    n_current: int
    window_start: _timestamp_pb2.Timestamp
    window_end: _timestamp_pb2.Timestamp
    def __init__(self, feature: _Optional[str] = ..., statistic: _Optional[str] = ..., value: _Optional[float] = ..., p_value: _Optional[float] = ..., threshold: _Optional[float] = ..., effect_size: _Optional[float] = ..., n_reference: _Optional[int] = ..., n_current: _Optional[int] = ..., window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IncidentChanged(_message.Message):
    __slots__ = ("incident_id", "state", "version", "signal", "severity", "evidence", "reference_id", "config_hash", "feature", "window_id")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[IncidentChanged.State]
        STATE_OPENED: _ClassVar[IncidentChanged.State]
        STATE_UPDATED: _ClassVar[IncidentChanged.State]
        STATE_RESOLVED: _ClassVar[IncidentChanged.State]
    STATE_UNSPECIFIED: IncidentChanged.State
    STATE_OPENED: IncidentChanged.State
    STATE_UPDATED: IncidentChanged.State
    STATE_RESOLVED: IncidentChanged.State
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_HASH_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_ID_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    state: IncidentChanged.State
    version: _common_pb2.ModelVersionRef
    signal: Signal
    severity: Severity
    evidence: _containers.RepeatedCompositeFieldContainer[Evidence]
    reference_id: str
    config_hash: str
    feature: str
    window_id: str
    def __init__(self, incident_id: _Optional[str] = ..., state: _Optional[_Union[IncidentChanged.State, str]] = ..., version: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., signal: _Optional[_Union[Signal, str]] = ..., severity: _Optional[_Union[Severity, str]] = ..., evidence: _Optional[_Iterable[_Union[Evidence, _Mapping]]] = ..., reference_id: _Optional[str] = ..., config_hash: _Optional[str] = ..., feature: _Optional[str] = ..., window_id: _Optional[str] = ...) -> None: ...

class RetrainingSuggested(_message.Message):
    __slots__ = ("incident_id", "version", "signal", "dataset_digest", "media_type", "rows", "columns", "label_column", "windows", "first_event_time", "last_event_time")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    DATASET_DIGEST_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    LABEL_COLUMN_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    FIRST_EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    version: _common_pb2.ModelVersionRef
    signal: Signal
    dataset_digest: str
    media_type: str
    rows: int
    columns: _containers.RepeatedScalarFieldContainer[str]
    label_column: str
    windows: _containers.RepeatedScalarFieldContainer[str]
    first_event_time: _timestamp_pb2.Timestamp
    last_event_time: _timestamp_pb2.Timestamp
    def __init__(self, incident_id: _Optional[str] = ..., version: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., signal: _Optional[_Union[Signal, str]] = ..., dataset_digest: _Optional[str] = ..., media_type: _Optional[str] = ..., rows: _Optional[int] = ..., columns: _Optional[_Iterable[str]] = ..., label_column: _Optional[str] = ..., windows: _Optional[_Iterable[str]] = ..., first_event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
