"""Every Modelyard topic, in one place. docs/events.md is generated from this catalogue (`make docs`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from google.protobuf.message import Message

from modelyard.contracts.events.v1 import (
    governance_events_pb2 as gov,
)
from modelyard.contracts.events.v1 import (
    monitor_events_pb2 as mon,
)
from modelyard.contracts.events.v1 import (
    registry_events_pb2 as reg,
)
from modelyard.contracts.events.v1 import (
    serving_events_pb2 as srv,
)

DLQ_SUFFIX = ".dlq"
# The prediction stream is the one unbounded topic: the monitor reads it within seconds, so a day of it (and at most
# 1 GiB per partition, whichever comes first) covers an outage without letting the broker grow without limit.
PREDICTIONS_RETENTION_MS = 24 * 3600 * 1000
PREDICTIONS_RETENTION_BYTES = 1 << 30


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    producer: str
    summary: str
    payloads: tuple[type[Message], ...]
    key: str = "model name"
    # CloudEvents sources allowed to publish here; a consumer dead-letters events from any other. Empty: anyone.
    sources: tuple[str, ...] = ()
    # Events here change what is served (or can trigger that): each must carry a valid signature of a key its
    # consumer trusts for the topic's source, or it is dead-lettered before any handler sees it.
    signed: bool = False
    # Topic configs passed to CreateTopics (real Kafka honours them; see docs/operations.md for the embedded broker).
    configs: tuple[tuple[str, str], ...] = ()

    @property
    def dlq(self) -> str:
        return self.name + DLQ_SUFFIX

    @cached_property
    def event_types(self) -> tuple[str, ...]:
        """Asked for every record a consumer reads: computed once."""
        return tuple(p.DESCRIPTOR.full_name for p in self.payloads)


REGISTRY_EVENTS = Topic(
    "modelyard.registry.events",
    partitions=3,
    producer="registry",
    summary="Every state change of registered models, versions, aliases and tags (via the outbox).",
    payloads=(
        reg.RegisteredModelCreated,
        reg.ModelVersionRegistered,
        reg.ModelVersionStatusChanged,
        reg.AliasMoved,
        reg.TagsChanged,
        reg.ModelVersionArchived,
    ),
    sources=("registry",),
)
GOVERNANCE_DECISIONS = Topic(
    "modelyard.governance.decisions",
    partitions=3,
    producer="governance",
    summary="Promotion requests and their outcomes; the deployment plans serving enacts.",
    payloads=(gov.PromotionRequested, gov.DeploymentApproved, gov.PromotionRejected, gov.RollbackOrdered),
    sources=("governance",),
    signed=True,
)
GOVERNANCE_CHECKPOINTS = Topic(
    "modelyard.governance.checkpoints",
    partitions=1,  # one chain, one order: the last record is the latest checkpoint
    producer="governance",
    summary=(
        "Every signed checkpoint of the audit chain's head, published from the checkpoint's own transaction (via the "
        "outbox): the record of what governance signed that its database cannot rewrite. Each payload carries its own "
        "Ed25519 signature by the audit key."
    ),
    payloads=(gov.AuditCheckpointSigned,),
    key="`audit` (one chain)",
    sources=("governance",),
)
SERVING_PREDICTIONS = Topic(
    "modelyard.serving.predictions",
    partitions=6,
    producer="serving",
    summary=(
        "Every inference, in columnar batches of one model version: inputs, outputs, latency, status (format below)."
    ),
    payloads=(srv.PredictionBatch,),
    sources=("serving",),
    configs=(("retention.ms", str(PREDICTIONS_RETENTION_MS)), ("retention.bytes", str(PREDICTIONS_RETENTION_BYTES))),
)
SERVING_STATUS = Topic(
    "modelyard.serving.status",
    partitions=3,
    producer="serving",
    summary="What each serving replica actually runs: loaded, failed, unloaded, with digests.",
    payloads=(srv.ModelLoaded, srv.ModelLoadFailed, srv.ModelUnloaded),
    sources=("serving",),
)
MONITOR_FEEDBACK = Topic(
    "modelyard.monitor.feedback",
    partitions=6,
    producer="applications (or the monitor's feedback API)",
    summary="Ground truth for earlier predictions, joined by request id: one label an event (`FeedbackReceived`), or "
    "thousands column-wise (`FeedbackBatch`, what the bulk feedback APIs publish).",
    payloads=(mon.FeedbackReceived, mon.FeedbackBatch),
)
MONITOR_ALERTS = Topic(
    "modelyard.monitor.alerts",
    partitions=3,
    producer="monitor",
    summary="Incidents opened, escalated and resolved, with their statistical evidence; the retraining they suggest "
    "(a snapshot of the labelled traffic, registered as a dataset).",
    payloads=(mon.IncidentChanged, mon.RetrainingSuggested),
    sources=("monitor",),
    signed=True,
)

ALL: tuple[Topic, ...] = (
    REGISTRY_EVENTS,
    GOVERNANCE_DECISIONS,
    GOVERNANCE_CHECKPOINTS,
    SERVING_PREDICTIONS,
    SERVING_STATUS,
    MONITOR_FEEDBACK,
    MONITOR_ALERTS,
)
BY_NAME: dict[str, Topic] = {t.name: t for t in ALL}
# What governance's audit trail records: everything but the checkpoints of the trail itself (auditing those would
# make every checkpoint a new head to sign, for ever).
AUDITED: tuple[Topic, ...] = tuple(t for t in ALL if t is not GOVERNANCE_CHECKPOINTS)
DLQ_PARTITIONS = 1


def payload_type(event_type: str) -> type[Message] | None:
    """The protobuf class of a CloudEvents `type` (the payload's full protobuf name), if we know it."""
    return _PAYLOADS.get(event_type)


_PAYLOADS: dict[str, type[Message]] = {p.DESCRIPTOR.full_name: p for t in ALL for p in t.payloads}
