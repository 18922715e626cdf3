import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from modelyard.contracts.events.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PromotionRequested(_message.Message):
    __slots__ = ("request_id", "version", "target_alias", "requested_by", "policy_hash")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TARGET_ALIAS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    POLICY_HASH_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    version: _common_pb2.ModelVersionRef
    target_alias: str
    requested_by: str
    policy_hash: str
    def __init__(self, request_id: _Optional[str] = ..., version: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., target_alias: _Optional[str] = ..., requested_by: _Optional[str] = ..., policy_hash: _Optional[str] = ...) -> None: ...

class DeploymentApproved(_message.Message):
    __slots__ = ("request_id", "target_alias", "plan", "approvers", "policy_hash", "evidence")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ALIAS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    APPROVERS_FIELD_NUMBER: _ClassVar[int]
    POLICY_HASH_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    target_alias: str
    plan: _common_pb2.DeploymentPlan
    approvers: _containers.RepeatedScalarFieldContainer[str]
    policy_hash: str
    evidence: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., target_alias: _Optional[str] = ..., plan: _Optional[_Union[_common_pb2.DeploymentPlan, _Mapping]] = ..., approvers: _Optional[_Iterable[str]] = ..., policy_hash: _Optional[str] = ..., evidence: _Optional[_Iterable[str]] = ...) -> None: ...

class PromotionRejected(_message.Message):
    __slots__ = ("request_id", "version", "reason", "decided_by", "outcome", "target_alias")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    TARGET_ALIAS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    version: _common_pb2.ModelVersionRef
    reason: str
    decided_by: str
    outcome: str
    target_alias: str
    def __init__(self, request_id: _Optional[str] = ..., version: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., reason: _Optional[str] = ..., decided_by: _Optional[str] = ..., outcome: _Optional[str] = ..., target_alias: _Optional[str] = ...) -> None: ...

class RollbackOrdered(_message.Message):
    __slots__ = ("incident_id", "plan", "rolled_back", "reason")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    plan: _common_pb2.DeploymentPlan
    rolled_back: _common_pb2.ModelVersionRef
    reason: str
    def __init__(self, incident_id: _Optional[str] = ..., plan: _Optional[_Union[_common_pb2.DeploymentPlan, _Mapping]] = ..., rolled_back: _Optional[_Union[_common_pb2.ModelVersionRef, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class AuditCheckpointSigned(_message.Message):
    __slots__ = ("seq", "head_hash", "signed_at", "key_id", "signature")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    head_hash: str
    signed_at: _timestamp_pb2.Timestamp
    key_id: str
    signature: str
    def __init__(self, seq: _Optional[int] = ..., head_hash: _Optional[str] = ..., signed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key_id: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...
