import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from modelyard.contracts.events.v1 import common_pb2 as _common_pb2
from modelyard.contracts.events.v1 import governance_events_pb2 as _governance_events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckResult(_message.Message):
    __slots__ = ("name", "passed", "detail", "evidence")
    class EvidenceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    passed: bool
    detail: str
    evidence: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., passed: _Optional[bool] = ..., detail: _Optional[str] = ..., evidence: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PromotionRequest(_message.Message):
    __slots__ = ("request_id", "version", "target_alias", "requested_by", "registered_by", "policy_hash", "state", "required_approvals", "approver_role", "approvers", "checks", "reason", "decided_by", "created_at", "expires_at", "decided_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TARGET_ALIAS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_BY_FIELD_NUMBER: _ClassVar[int]
    POLICY_HASH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_APPROVALS_FIELD_NUMBER: _ClassVar[int]
    APPROVER_ROLE_FIELD_NUMBER: _ClassVar[int]
    APPROVERS_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    version: _common_pb2.ModelVersionRef
    target_alias: str
    requested_by: str
    registered_by: str
    policy_hash: str
    state: str
    required_approvals: int
    approver_role: str
    approvers: _containers.RepeatedScalarFieldContainer[str]
    checks: _containers.RepeatedCompositeFieldContainer[CheckResult]
    reason: str
    decided_by: str
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    decided_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., version: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., target_alias: _Optional[str] = ..., requested_by: _Optional[str] = ..., registered_by: _Optional[str] = ..., policy_hash: _Optional[str] = ..., state: _Optional[str] = ..., required_approvals: _Optional[int] = ..., approver_role: _Optional[str] = ..., approvers: _Optional[_Iterable[str]] = ..., checks: _Optional[_Iterable[_Union[CheckResult, _Mapping]]] = ..., reason: _Optional[str] = ..., decided_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RequestPromotionRequest(_message.Message):
    __slots__ = ("model_name", "version", "target_alias")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TARGET_ALIAS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    target_alias: str
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., target_alias: _Optional[str] = ...) -> None: ...

class RequestPromotionResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: PromotionRequest
    def __init__(self, request: _Optional[_Union[PromotionRequest, _Mapping]] = ...) -> None: ...

class ApproveRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class ApproveResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: PromotionRequest
    def __init__(self, request: _Optional[_Union[PromotionRequest, _Mapping]] = ...) -> None: ...

class RejectRequest(_message.Message):
    __slots__ = ("request_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RejectResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: PromotionRequest
    def __init__(self, request: _Optional[_Union[PromotionRequest, _Mapping]] = ...) -> None: ...

class ListPendingRequest(_message.Message):
    __slots__ = ("model_name",)
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    def __init__(self, model_name: _Optional[str] = ...) -> None: ...

class ListPendingResponse(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[PromotionRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[PromotionRequest, _Mapping]]] = ...) -> None: ...

class GetDecisionRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class GetDecisionResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: PromotionRequest
    def __init__(self, request: _Optional[_Union[PromotionRequest, _Mapping]] = ...) -> None: ...

class GetDeploymentPlanRequest(_message.Message):
    __slots__ = ("model_name",)
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    def __init__(self, model_name: _Optional[str] = ...) -> None: ...

class GetDeploymentPlanResponse(_message.Message):
    __slots__ = ("plan",)
    PLAN_FIELD_NUMBER: _ClassVar[int]
    plan: _common_pb2.DeploymentPlan
    def __init__(self, plan: _Optional[_Union[_common_pb2.DeploymentPlan, _Mapping]] = ...) -> None: ...

class ListDeploymentPlansRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDeploymentPlansResponse(_message.Message):
    __slots__ = ("plans",)
    PLANS_FIELD_NUMBER: _ClassVar[int]
    plans: _containers.RepeatedCompositeFieldContainer[_common_pb2.DeploymentPlan]
    def __init__(self, plans: _Optional[_Iterable[_Union[_common_pb2.DeploymentPlan, _Mapping]]] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("seq", "recorded_at", "kind", "event_id", "source", "model_name", "version", "request_id", "body", "prev_hash", "hash")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    seq: int
    recorded_at: _timestamp_pb2.Timestamp
    kind: str
    event_id: str
    source: str
    model_name: str
    version: int
    request_id: str
    body: str
    prev_hash: str
    hash: str
    def __init__(self, seq: _Optional[int] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[str] = ..., event_id: _Optional[str] = ..., source: _Optional[str] = ..., model_name: _Optional[str] = ..., version: _Optional[int] = ..., request_id: _Optional[str] = ..., body: _Optional[str] = ..., prev_hash: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...

class ListAuditEntriesRequest(_message.Message):
    __slots__ = ("model_name", "version", "request_id", "since", "until")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    request_id: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., request_id: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAuditEntriesResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ...) -> None: ...

class GetServedAtRequest(_message.Message):
    __slots__ = ("model_name", "at")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, model_name: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetServedAtResponse(_message.Message):
    __slots__ = ("plan", "request", "role")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    plan: _common_pb2.DeploymentPlan
    request: PromotionRequest
    role: str
    def __init__(self, plan: _Optional[_Union[_common_pb2.DeploymentPlan, _Mapping]] = ..., request: _Optional[_Union[PromotionRequest, _Mapping]] = ..., role: _Optional[str] = ...) -> None: ...

class VerifyAuditRequest(_message.Message):
    __slots__ = ("published",)
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    published: _containers.RepeatedCompositeFieldContainer[_governance_events_pb2.AuditCheckpointSigned]
    def __init__(self, published: _Optional[_Iterable[_Union[_governance_events_pb2.AuditCheckpointSigned, _Mapping]]] = ...) -> None: ...

class VerifyAuditResponse(_message.Message):
    __slots__ = ("ok", "entries", "checkpoints", "first_bad_seq", "problem", "published_checkpoints", "foreign_checkpoints")
    OK_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    FOREIGN_CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    entries: int
    checkpoints: int
    first_bad_seq: int
    problem: str
    published_checkpoints: int
    foreign_checkpoints: int
    def __init__(self, ok: _Optional[bool] = ..., entries: _Optional[int] = ..., checkpoints: _Optional[int] = ..., first_bad_seq: _Optional[int] = ..., problem: _Optional[str] = ..., published_checkpoints: _Optional[int] = ..., foreign_checkpoints: _Optional[int] = ...) -> None: ...

class ExportAuditRequest(_message.Message):
    __slots__ = ("model_name", "since", "until")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, model_name: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExportAuditResponse(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, lines: _Optional[_Iterable[str]] = ...) -> None: ...

class GetModelCardRequest(_message.Message):
    __slots__ = ("model_name", "version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetModelCardResponse(_message.Message):
    __slots__ = ("json", "markdown")
    JSON_FIELD_NUMBER: _ClassVar[int]
    MARKDOWN_FIELD_NUMBER: _ClassVar[int]
    json: str
    markdown: str
    def __init__(self, json: _Optional[str] = ..., markdown: _Optional[str] = ...) -> None: ...

class TracePredictionRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class TracePredictionResponse(_message.Message):
    __slots__ = ("document", "key_id")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    document: str
    key_id: str
    def __init__(self, document: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...
