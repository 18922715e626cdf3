"""Domain objects <-> protobuf messages: the events the handlers record (built here from what they decided) and
the transports' messages (gRPC, and REST, which speaks the same messages' JSON form)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from modelyard.contracts.events.v1 import common_pb2, registry_events_pb2
from modelyard.contracts.registry.v1 import registry_service_pb2 as pb
from modelyard.events.envelope import Event
from modelyard.registry.domain.errors import InvalidArgument
from modelyard.registry.domain.model import (
    AliasMove,
    Artifact,
    GarbageReport,
    Lineage,
    ModelVersion,
    RegisteredModel,
    Signature,
    TensorSpec,
    VersionStatus,
)

SOURCE = "registry"
STATUS_TO_PROTO = {
    VersionStatus.PENDING_REGISTRATION: registry_events_pb2.MODEL_VERSION_STATUS_PENDING_REGISTRATION,
    VersionStatus.READY: registry_events_pb2.MODEL_VERSION_STATUS_READY,
    VersionStatus.FAILED_REGISTRATION: registry_events_pb2.MODEL_VERSION_STATUS_FAILED_REGISTRATION,
    VersionStatus.ARCHIVED: registry_events_pb2.MODEL_VERSION_STATUS_ARCHIVED,
}
_STATUS_FROM_PROTO = {value: key for key, value in STATUS_TO_PROTO.items()}


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def status_from_proto(value: registry_events_pb2.ModelVersionStatus) -> VersionStatus:
    try:
        return _STATUS_FROM_PROTO[value]
    except KeyError:
        raise InvalidArgument(f"unknown model version status {value}") from None


def registered_model(model: RegisteredModel) -> pb.RegisteredModel:
    return pb.RegisteredModel(
        name=model.name,
        description=model.description,
        owner=model.owner,
        tags=dict(model.tags),
        created_by=model.created_by,
        created_at=timestamp(model.created_at),
        latest_version=model.latest_version,
        aliases=dict(model.aliases),
    )


def _tensor(spec: TensorSpec, feature_names: tuple[str, ...] = ()) -> pb.TensorSpec:
    message = pb.TensorSpec(name=spec.name, element_type=spec.element_type, feature_names=feature_names)
    if spec.shape is not None:
        message.shape.SetInParent()
        for dim in spec.shape:
            if isinstance(dim, int):
                message.shape.dims.add(value=dim)
            elif isinstance(dim, str):
                message.shape.dims.add(param=dim)
            else:
                message.shape.dims.add()
    return message


def signature(sig: Signature, feature_names: Mapping[str, tuple[str, ...]] = {}) -> pb.Signature:
    return pb.Signature(
        inputs=[_tensor(s, feature_names.get(s.name, ())) for s in sig.inputs],
        outputs=[_tensor(s) for s in sig.outputs],
        opsets=dict(sig.opsets),
        ir_version=sig.ir_version,
        producer_name=sig.producer_name,
        producer_version=sig.producer_version,
    )


def lineage_to_proto(lineage: Lineage) -> pb.Lineage:
    return pb.Lineage(
        training_datasets=lineage.training_datasets,
        evaluation_datasets=lineage.evaluation_datasets,
        code_revision=lineage.code_revision,
        parameters=dict(lineage.parameters),
        metrics=dict(lineage.metrics),
        environment=dict(lineage.environment),
        run_id=lineage.run_id,
        source=lineage.source,
    )


def lineage_from_proto(message: pb.Lineage) -> Lineage:
    return Lineage(
        training_datasets=tuple(message.training_datasets),
        evaluation_datasets=tuple(message.evaluation_datasets),
        code_revision=message.code_revision,
        parameters=dict(message.parameters),
        metrics=dict(message.metrics),
        environment=dict(message.environment),
        run_id=message.run_id,
        source=message.source,
    )


def model_version(version: ModelVersion) -> pb.ModelVersion:
    return pb.ModelVersion(
        model_name=version.model_name,
        version=version.version,
        digest=version.digest,
        size_bytes=version.size_bytes,
        media_type=version.media_type.value,
        signature=signature(version.signature, version.feature_names),
        lineage=lineage_to_proto(version.lineage),
        reference_dataset_digest=version.reference_dataset_digest,
        status=STATUS_TO_PROTO[version.status],
        status_message=version.status_message,
        created_by=version.created_by,
        created_at=timestamp(version.created_at),
        tags=dict(version.tags),
    )


def version_ref(version: ModelVersion) -> common_pb2.ModelVersionRef:
    return common_pb2.ModelVersionRef(model_name=version.model_name, version=version.version, digest=version.digest)


def artifact(item: Artifact) -> pb.Artifact:
    message = pb.Artifact(
        digest=item.digest,
        size_bytes=item.size_bytes,
        media_type=item.media_type.value,
        created_by=item.created_by,
        created_at=timestamp(item.created_at),
    )
    if item.signature is not None:
        message.signature.CopyFrom(signature(item.signature))
    if item.dataset is not None:
        message.dataset.CopyFrom(pb.DatasetSchema(columns=item.dataset.columns, rows=item.dataset.rows))
    return message


def alias_move(move: AliasMove) -> pb.AliasMove:
    return pb.AliasMove(
        model_name=move.model_name,
        alias=move.alias,
        from_version=move.from_version or 0,
        to_version=move.to_version or 0,
        moved_by=move.moved_by,
        moved_at=timestamp(move.moved_at),
        reason=move.reason,
    )


def garbage_report(report: GarbageReport) -> pb.CollectGarbageResponse:
    return pb.CollectGarbageResponse(
        blobs=[
            pb.StoredBlob(digest=b.digest, size_bytes=b.size_bytes, modified_at=timestamp(b.modified_at))
            for b in report.blobs
        ],
        size_bytes=report.size_bytes,
        deleted=report.deleted,
        young_blobs=report.young_blobs,
        grace_s=report.grace_s,
    )


# -- events: the facts the handlers record, one per decision ----------------------------------------------------


def _event(model_name: str, payload: Message) -> Event:
    return Event.new(key=model_name, payload=payload, source=SOURCE)


def model_created(model: RegisteredModel) -> Event:
    return _event(
        model.name,
        registry_events_pb2.RegisteredModelCreated(
            model_name=model.name,
            description=model.description,
            owner=model.owner,
            tags=dict(model.tags),
            created_by=model.created_by,
            created_at=timestamp(model.created_at),
        ),
    )


def version_registered(version: ModelVersion) -> Event:
    return _event(
        version.model_name,
        registry_events_pb2.ModelVersionRegistered(
            version=version_ref(version),
            size_bytes=version.size_bytes,
            created_by=version.created_by,
            created_at=timestamp(version.created_at),
            reference_dataset_digest=version.reference_dataset_digest,
        ),
    )


def status_changed(version: ModelVersion, previous: VersionStatus, status: VersionStatus, message: str) -> Event:
    return _event(
        version.model_name,
        registry_events_pb2.ModelVersionStatusChanged(
            version=version_ref(version),
            previous_status=STATUS_TO_PROTO[previous],
            status=STATUS_TO_PROTO[status],
            status_message=message,
        ),
    )


def version_archived(version: ModelVersion, archived_by: str) -> Event:
    return _event(
        version.model_name,
        registry_events_pb2.ModelVersionArchived(version=version_ref(version), archived_by=archived_by),
    )


def tags_changed(model_name: str, version: int, tags: Mapping[str, str], changed_by: str) -> Event:
    return _event(
        model_name,
        registry_events_pb2.TagsChanged(model_name=model_name, version=version, tags=tags, changed_by=changed_by),
    )


def alias_moved(move: AliasMove) -> Event:
    return _event(
        move.model_name,
        registry_events_pb2.AliasMoved(
            model_name=move.model_name,
            alias=move.alias,
            from_version=move.from_version or 0,
            to_version=move.to_version or 0,
            moved_by=move.moved_by,
            reason=move.reason,
        ),
    )
