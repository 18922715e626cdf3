import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from modelyard.contracts.events.v1 import common_pb2 as _common_pb2
from modelyard.contracts.events.v1 import monitor_events_pb2 as _monitor_events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SendFeedbackRequest(_message.Message):
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

class SendFeedbackResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SendFeedbackStreamRequest(_message.Message):
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

class SendFeedbackStreamResponse(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    def __init__(self, accepted: _Optional[int] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ("model_name",)
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    def __init__(self, model_name: _Optional[str] = ...) -> None: ...

class VersionStatus(_message.Message):
    __slots__ = ("model_name", "version", "reference_id", "windows_closed", "records_seen", "late_records", "open_incidents", "last_window", "performance", "label_coverage")
    class PerformanceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_CLOSED_FIELD_NUMBER: _ClassVar[int]
    RECORDS_SEEN_FIELD_NUMBER: _ClassVar[int]
    LATE_RECORDS_FIELD_NUMBER: _ClassVar[int]
    OPEN_INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    LAST_WINDOW_FIELD_NUMBER: _ClassVar[int]
    PERFORMANCE_FIELD_NUMBER: _ClassVar[int]
    LABEL_COVERAGE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    reference_id: str
    windows_closed: int
    records_seen: int
    late_records: int
    open_incidents: int
    last_window: WindowSummary
    performance: _containers.ScalarMap[str, float]
    label_coverage: float
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., reference_id: _Optional[str] = ..., windows_closed: _Optional[int] = ..., records_seen: _Optional[int] = ..., late_records: _Optional[int] = ..., open_incidents: _Optional[int] = ..., last_window: _Optional[_Union[WindowSummary, _Mapping]] = ..., performance: _Optional[_Mapping[str, float]] = ..., label_coverage: _Optional[float] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("versions", "config_hash")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_HASH_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[VersionStatus]
    config_hash: str
    def __init__(self, versions: _Optional[_Iterable[_Union[VersionStatus, _Mapping]]] = ..., config_hash: _Optional[str] = ...) -> None: ...

class FeatureWindowResult(_message.Message):
    __slots__ = ("feature", "signal", "statistic", "value", "p_value", "threshold", "effect_size", "breached", "effects")
    class EffectsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    EFFECT_SIZE_FIELD_NUMBER: _ClassVar[int]
    BREACHED_FIELD_NUMBER: _ClassVar[int]
    EFFECTS_FIELD_NUMBER: _ClassVar[int]
    feature: str
    signal: _monitor_events_pb2.Signal
    statistic: str
    value: float
    p_value: float
    threshold: float
    effect_size: float
    breached: bool
    effects: _containers.ScalarMap[str, float]
    def __init__(self, feature: _Optional[str] = ..., signal: _Optional[_Union[_monitor_events_pb2.Signal, str]] = ..., statistic: _Optional[str] = ..., value: _Optional[float] = ..., p_value: _Optional[float] = ..., threshold: _Optional[float] = ..., effect_size: _Optional[float] = ..., breached: _Optional[bool] = ..., effects: _Optional[_Mapping[str, float]] = ...) -> None: ...

class WindowSummary(_message.Message):
    __slots__ = ("window_id", "start", "end", "n", "tested", "alpha", "closed_by", "features", "quality", "operations", "estimated_performance")
    class QualityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class OperationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class EstimatedPerformanceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WINDOW_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    TESTED_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    CLOSED_BY_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_PERFORMANCE_FIELD_NUMBER: _ClassVar[int]
    window_id: str
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    n: int
    tested: bool
    alpha: float
    closed_by: str
    features: _containers.RepeatedCompositeFieldContainer[FeatureWindowResult]
    quality: _containers.ScalarMap[str, float]
    operations: _containers.ScalarMap[str, float]
    estimated_performance: _containers.ScalarMap[str, float]
    def __init__(self, window_id: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., n: _Optional[int] = ..., tested: _Optional[bool] = ..., alpha: _Optional[float] = ..., closed_by: _Optional[str] = ..., features: _Optional[_Iterable[_Union[FeatureWindowResult, _Mapping]]] = ..., quality: _Optional[_Mapping[str, float]] = ..., operations: _Optional[_Mapping[str, float]] = ..., estimated_performance: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ListWindowsRequest(_message.Message):
    __slots__ = ("model_name", "version", "feature", "limit")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    feature: str
    limit: int
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., feature: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListWindowsResponse(_message.Message):
    __slots__ = ("windows",)
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    windows: _containers.RepeatedCompositeFieldContainer[WindowSummary]
    def __init__(self, windows: _Optional[_Iterable[_Union[WindowSummary, _Mapping]]] = ...) -> None: ...

class Incident(_message.Message):
    __slots__ = ("incident_id", "model_name", "version", "signal", "feature", "severity", "open", "opened_at", "resolved_at", "evidence", "reference_id", "config_hash")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_HASH_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    model_name: str
    version: int
    signal: _monitor_events_pb2.Signal
    feature: str
    severity: _monitor_events_pb2.Severity
    open: bool
    opened_at: _timestamp_pb2.Timestamp
    resolved_at: _timestamp_pb2.Timestamp
    evidence: _containers.RepeatedCompositeFieldContainer[_monitor_events_pb2.Evidence]
    reference_id: str
    config_hash: str
    def __init__(self, incident_id: _Optional[str] = ..., model_name: _Optional[str] = ..., version: _Optional[int] = ..., signal: _Optional[_Union[_monitor_events_pb2.Signal, str]] = ..., feature: _Optional[str] = ..., severity: _Optional[_Union[_monitor_events_pb2.Severity, str]] = ..., open: _Optional[bool] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., evidence: _Optional[_Iterable[_Union[_monitor_events_pb2.Evidence, _Mapping]]] = ..., reference_id: _Optional[str] = ..., config_hash: _Optional[str] = ...) -> None: ...

class ListIncidentsRequest(_message.Message):
    __slots__ = ("model_name", "open_only", "limit")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    OPEN_ONLY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    open_only: bool
    limit: int
    def __init__(self, model_name: _Optional[str] = ..., open_only: _Optional[bool] = ..., limit: _Optional[int] = ...) -> None: ...

class ListIncidentsResponse(_message.Message):
    __slots__ = ("incidents",)
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    incidents: _containers.RepeatedCompositeFieldContainer[Incident]
    def __init__(self, incidents: _Optional[_Iterable[_Union[Incident, _Mapping]]] = ...) -> None: ...

class RebaselineRequest(_message.Message):
    __slots__ = ("model_name", "version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RebaselineResponse(_message.Message):
    __slots__ = ("reference_id",)
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    reference_id: str
    def __init__(self, reference_id: _Optional[str] = ...) -> None: ...

class ListPerformanceRequest(_message.Message):
    __slots__ = ("model_name", "version", "limit")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    limit: int
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class MetricBaseline(_message.Message):
    __slots__ = ("value", "standard_error")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    STANDARD_ERROR_FIELD_NUMBER: _ClassVar[int]
    value: float
    standard_error: float
    def __init__(self, value: _Optional[float] = ..., standard_error: _Optional[float] = ...) -> None: ...

class PerformanceWindow(_message.Message):
    __slots__ = ("start", "end", "predictions", "labelled", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    LABELLED_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    predictions: int
    labelled: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., predictions: _Optional[int] = ..., labelled: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ListPerformanceResponse(_message.Message):
    __slots__ = ("baseline", "windows")
    class BaselineEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetricBaseline
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetricBaseline, _Mapping]] = ...) -> None: ...
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    baseline: _containers.MessageMap[str, MetricBaseline]
    windows: _containers.RepeatedCompositeFieldContainer[PerformanceWindow]
    def __init__(self, baseline: _Optional[_Mapping[str, MetricBaseline]] = ..., windows: _Optional[_Iterable[_Union[PerformanceWindow, _Mapping]]] = ...) -> None: ...

class GetPredictionRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class LoggedTensor(_message.Message):
    __slots__ = ("name", "values", "strings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: _containers.RepeatedScalarFieldContainer[float]
    strings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ..., strings: _Optional[_Iterable[str]] = ...) -> None: ...

class LoggedPrediction(_message.Message):
    __slots__ = ("request_id", "version", "plan_revision", "event_time", "inputs", "outputs", "label", "target", "logged_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PLAN_REVISION_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    LOGGED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    version: _common_pb2.ModelVersionRef
    plan_revision: int
    event_time: _timestamp_pb2.Timestamp
    inputs: _containers.RepeatedCompositeFieldContainer[LoggedTensor]
    outputs: _containers.RepeatedCompositeFieldContainer[LoggedTensor]
    label: str
    target: float
    logged_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., version: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., plan_revision: _Optional[int] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., inputs: _Optional[_Iterable[_Union[LoggedTensor, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[LoggedTensor, _Mapping]]] = ..., label: _Optional[str] = ..., target: _Optional[float] = ..., logged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetPredictionResponse(_message.Message):
    __slots__ = ("prediction", "window", "incidents")
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    prediction: LoggedPrediction
    window: WindowSummary
    incidents: _containers.RepeatedCompositeFieldContainer[Incident]
    def __init__(self, prediction: _Optional[_Union[LoggedPrediction, _Mapping]] = ..., window: _Optional[_Union[WindowSummary, _Mapping]] = ..., incidents: _Optional[_Iterable[_Union[Incident, _Mapping]]] = ...) -> None: ...
