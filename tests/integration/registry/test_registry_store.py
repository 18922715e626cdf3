"""The registry's use cases on a real store (SQLite and PostgreSQL) with real skl2onnx models."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from modelyard.auth import PermissionDenied, Principal, Role
from modelyard.contracts.events.v1 import registry_events_pb2
from modelyard.events.topics import payload_type
from modelyard.registry.adapters.sql import schema
from modelyard.registry.bootstrap import RegistryParts
from modelyard.registry.domain.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from modelyard.registry.domain.model import Artifact, MediaType, VersionStatus
from modelyard.registry.handlers import NewVersion, VersionQuery
from modelyard.registry.testing import ALICE, chunked, digest_of
from modelyard.testing.models import LABEL_COLUMN, TrainedModel

pytestmark = pytest.mark.integration


def upload(registry: RegistryParts, data: bytes, media: MediaType = MediaType.ONNX) -> Artifact:
    return asyncio.run(registry.handlers.upload_artifact(ALICE, media.value, digest_of(data), len(data), chunked(data)))


def register(registry: RegistryParts, name: str, model: TrainedModel, *, with_reference: bool = True) -> int:
    upload(registry, model.onnx)
    reference = ""
    if with_reference:
        reference = upload(registry, model.reference_csv, MediaType.CSV).digest
    version = registry.handlers.create_version(
        ALICE,
        NewVersion(name, model.digest, reference_dataset_digest=reference, label_column=LABEL_COLUMN),
    )
    return version.version


def events_of(registry: RegistryParts, name: str) -> list[str]:
    with registry.engine.connect() as connection:
        rows = connection.execute(
            sa.select(schema.outbox.c.event_type).where(schema.outbox.c.event_key == name).order_by(schema.outbox.c.id)
        )
        return [row.event_type.rsplit(".", 1)[1] for row in rows]


def test_register_model_version_end_to_end(
    registry: RegistryParts, model_name: str, onnx_models: dict[str, TrainedModel]
) -> None:
    handlers = registry.handlers
    model = onnx_models["breast-cancer"]
    created = handlers.create_model(ALICE, model_name, description="tumours", tags={"team": "oncology"})
    assert created.created_by == "alice" and created.owner == "alice"

    number = register(registry, model_name, model)
    version = handlers.get_version(ALICE, model_name, number)
    assert (version.version, version.digest, version.status) == (1, model.digest, VersionStatus.PENDING_REGISTRATION)
    assert version.signature.inputs[0].name == "X"
    assert version.signature.inputs[0].shape == ("N", 30)  # dynamic batch dimension kept as such
    assert version.signature.inputs[0].element_type == "FLOAT"
    assert [o.name for o in version.signature.outputs] == ["label", "probabilities"]
    assert (
        version.signature.opsets[""] == 17
        if "" in version.signature.opsets
        else version.signature.opsets["ai.onnx"] == 17
    )
    assert version.signature.producer_name == "skl2onnx"
    assert version.feature_names == {"X": model.feature_names}  # from the reference dataset, minus the label

    assert handlers.check_pending(100) >= 1
    ready = handlers.get_version(ALICE, model_name, number)
    assert ready.status is VersionStatus.READY
    assert events_of(registry, model_name) == [
        "RegisteredModelCreated",
        "ModelVersionRegistered",
        "ModelVersionStatusChanged",
    ]
    assert handlers.resolve_alias(ALICE, model_name, "latest").version == 1

    _, stream = handlers.open_artifact(ALICE, model.digest)
    assert b"".join(stream) == model.onnx


def test_duplicate_model_is_already_exists(registry: RegistryParts, model_name: str) -> None:
    registry.handlers.create_model(ALICE, model_name)
    with pytest.raises(AlreadyExists):
        registry.handlers.create_model(ALICE, model_name)
    assert events_of(registry, model_name) == ["RegisteredModelCreated"]  # no event for the refused one


@pytest.mark.parametrize("bad", ["", "has space", "../etc", "x" * 129, "-leading", "ünïcode"])
def test_malformed_model_names_are_invalid(registry: RegistryParts, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        registry.handlers.create_model(ALICE, bad)


def test_unknown_model_version_alias_are_not_found(registry: RegistryParts, model_name: str) -> None:
    handlers = registry.handlers
    with pytest.raises(NotFound):
        handlers.get_model(ALICE, model_name)
    handlers.create_model(ALICE, model_name)
    with pytest.raises(NotFound):
        handlers.get_version(ALICE, model_name, 7)
    with pytest.raises(NotFound):
        handlers.resolve_alias(ALICE, model_name, "production")
    with pytest.raises(NotFound):
        handlers.alias_history(ALICE, model_name, "production")
    with pytest.raises(NotFound):
        handlers.create_version(ALICE, NewVersion(model_name, digest_of(b"never uploaded")))


def test_concurrent_registrations_get_distinct_consecutive_versions(
    registry: RegistryParts, model_name: str, onnx_models: dict[str, TrainedModel]
) -> None:
    model = onnx_models["iris"]
    registry.handlers.create_model(ALICE, model_name)
    upload(registry, model.onnx)

    def create(_: int) -> int:
        return registry.handlers.create_version(ALICE, NewVersion(model_name, model.digest)).version

    with ThreadPoolExecutor(8) as pool:
        versions = list(pool.map(create, range(16)))
    assert sorted(versions) == list(range(1, 17))
    assert registry.handlers.get_model(ALICE, model_name).latest_version == 16


def test_aliases_history_and_as_of_resolution(
    registry: RegistryParts, model_name: str, onnx_models: dict[str, TrainedModel]
) -> None:
    handlers = registry.handlers
    handlers.create_model(ALICE, model_name)
    model = onnx_models["diabetes"]
    for _ in range(3):
        register(registry, model_name, model, with_reference=False)
    handlers.check_pending(100)

    handlers.set_alias(ALICE, model_name, "production", 1, reason="first")
    between_1_and_2 = datetime.now(UTC)
    handlers.set_alias(ALICE, model_name, "production", 2, reason="better")
    handlers.set_alias(ALICE, model_name, "production", 2, reason="no-op: not history")
    handlers.set_alias(ALICE, model_name, "candidate", 3)
    assert handlers.resolve_alias(ALICE, model_name, "production").version == 2
    assert handlers.resolve_alias(ALICE, model_name, "production", as_of=between_1_and_2).version == 1
    with pytest.raises(NotFound):  # before the alias existed
        handlers.resolve_alias(ALICE, model_name, "production", as_of=between_1_and_2 - timedelta(hours=1))

    handlers.delete_alias(ALICE, model_name, "production", reason="incident")
    with pytest.raises(NotFound):
        handlers.resolve_alias(ALICE, model_name, "production")
    history = handlers.alias_history(ALICE, model_name, "production", size=2)
    assert [(m.from_version, m.to_version, m.reason) for m in history.items] == [
        (2, None, "incident"),
        (1, 2, "better"),
    ]
    rest = handlers.alias_history(ALICE, model_name, "production", size=2, token=history.next_page_token)
    assert [(m.from_version, m.to_version, m.moved_by) for m in rest.items] == [(None, 1, "alice")]

    moved = [e for e in events_of(registry, model_name) if e == "AliasMoved"]
    assert len(moved) == 4  # the no-op is not an event either


def test_protected_alias_needs_approver(
    registry: RegistryParts, model_name: str, onnx_models: dict[str, TrainedModel]
) -> None:
    publisher = Principal("bob", frozenset({Role.PUBLISHER}))
    viewer = Principal("eve", frozenset({Role.VIEWER}))
    registry.handlers.create_model(publisher, model_name)
    register(registry, model_name, onnx_models["diabetes"], with_reference=False)
    registry.handlers.set_alias(publisher, model_name, "candidate", 1)
    with pytest.raises(PermissionDenied):
        registry.handlers.set_alias(publisher, model_name, "production", 1)
    with pytest.raises(PermissionDenied):
        registry.handlers.create_model(viewer, model_name + "-x")
    assert registry.handlers.get_model(viewer, model_name).name == model_name


def test_tags_archive_and_search(
    registry: RegistryParts, model_name: str, onnx_models: dict[str, TrainedModel]
) -> None:
    handlers = registry.handlers
    handlers.create_model(ALICE, model_name, tags={"team": "a"})
    model = onnx_models["diabetes"]
    for _ in range(3):
        register(registry, model_name, model, with_reference=False)
    handlers.check_pending(100)
    assert handlers.update_tags(ALICE, model_name, 0, {"stage": "dev"}, ["team"]) == {"stage": "dev"}
    assert handlers.update_tags(ALICE, model_name, 2, {"winner": "yes"}, []) == {"winner": "yes"}

    found = handlers.list_versions(ALICE, VersionQuery(tags={"winner": "yes"}))
    assert [(v.model_name, v.version) for v in found.items] == [(model_name, 2)]
    models = handlers.list_models(ALICE, name_contains=model_name, tags={"stage": "dev"})
    assert [m.name for m in models.items] == [model_name]

    handlers.set_alias(ALICE, model_name, "production", 3)
    with pytest.raises(FailedPrecondition):
        handlers.archive_version(ALICE, model_name, 3)
    archived = handlers.archive_version(ALICE, model_name, 1)
    assert archived.status is VersionStatus.ARCHIVED
    with pytest.raises(FailedPrecondition):
        handlers.set_alias(ALICE, model_name, "candidate", 1)

    page1 = handlers.list_versions(ALICE, VersionQuery(model_name=model_name), size=2)
    page2 = handlers.list_versions(ALICE, VersionQuery(model_name=model_name), size=2, token=page1.next_page_token)
    assert [v.version for v in page1.items] == [3, 2] and [v.version for v in page2.items] == [1]
    ready = handlers.list_versions(ALICE, VersionQuery(model_name=model_name, statuses=(VersionStatus.READY,)))
    assert [v.version for v in ready.items] == [3, 2]
    assert events_of(registry, model_name).count("TagsChanged") == 2
    assert "ModelVersionArchived" in events_of(registry, model_name)


def test_outbox_rows_decode_as_catalogue_events(registry: RegistryParts, model_name: str) -> None:
    registry.handlers.create_model(ALICE, model_name, description="d")
    with registry.engine.connect() as connection:
        row = connection.execute(sa.select(schema.outbox).where(schema.outbox.c.event_key == model_name)).one()
    payload_class = payload_type(row.event_type)
    assert payload_class is registry_events_pb2.RegisteredModelCreated
    payload = payload_class.FromString(row.payload)
    assert payload.model_name == model_name and payload.created_by == "alice"


def test_feature_names_must_match_the_input_width(
    registry: RegistryParts, model_name: str, onnx_models: dict[str, TrainedModel]
) -> None:
    model = onnx_models["iris"]
    registry.handlers.create_model(ALICE, model_name)
    upload(registry, model.onnx)
    with pytest.raises(InvalidArgument, match="4 columns but 2"):
        registry.handlers.create_version(ALICE, NewVersion(model_name, model.digest, feature_names={"X": ("a", "b")}))
    assert registry.handlers.get_model(ALICE, model_name).latest_version == 0  # rolled back, number not burnt
