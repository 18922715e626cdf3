"""The registry's SQL store: one transaction per use case, events written to the outbox in the same transaction."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from modelyard.events.envelope import Event
from modelyard.events.topics import REGISTRY_EVENTS
from modelyard.registry.adapters.sql import schema as t
from modelyard.registry.adapters.sql.logged_models import LoggedModelQueries
from modelyard.registry.adapters.sql.rows import alias_move, lineage, lineage_json, signature, signature_json
from modelyard.registry.domain.model import (
    AliasMove,
    Artifact,
    DatasetSchema,
    MediaType,
    ModelVersion,
    RegisteredModel,
    VersionStatus,
)
from modelyard.sql import migrations, outbox
from modelyard.sql.engine import transaction

MIGRATIONS = "modelyard.registry.adapters.sql:migrations"


class SqlRegistryStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def migrate(self) -> None:
        migrations.upgrade(self.engine, MIGRATIONS)

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[RegistryTransaction]:
        with transaction(self.engine, write=write) as connection:
            yield RegistryTransaction(connection)


class RegistryTransaction(LoggedModelQueries):
    """Queries and changes inside one database transaction. Model names are resolved to ids here."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    # -- registered models ------------------------------------------------------------------------------------

    def add_model(self, model: RegisteredModel) -> bool:
        """Insert a model; False (and nothing written) if the name is taken, even under a concurrent insert."""
        insert = _insert_ignoring_conflicts(self._c, t.registered_models).values(
            name=model.name,
            description=model.description,
            owner=model.owner,
            latest_version=0,
            created_by=model.created_by,
            created_at=model.created_at,
        )
        result = self._c.execute(insert.returning(t.registered_models.c.id))
        model_id = result.scalar()
        if model_id is None:
            return False
        self._replace_tags(model_id, 0, model.tags)
        return True

    def get_model(self, name: str) -> RegisteredModel | None:
        row = self._c.execute(_MODEL_BY_NAME, {"name": name}).first()
        return None if row is None else self._model(row)

    def list_models(
        self, name_contains: str, tags: Mapping[str, str], after: str | None, limit: int
    ) -> list[RegisteredModel]:
        m = t.registered_models
        query = sa.select(m).order_by(m.c.name).limit(limit)
        if name_contains:
            query = query.where(m.c.name.contains(name_contains, autoescape=True))
        if after is not None:
            query = query.where(m.c.name > after)
        query = _with_tags(query, m.c.id, sa.literal(0), tags)
        return [self._model(row) for row in self._c.execute(query)]

    def lock_model(self, name: str) -> int | None:
        """The model's id, its row locked until the transaction ends so that changes to one model queue up
        (SQLite has no row locks: its writers already hold the database lock from BEGIN IMMEDIATE)."""
        m = t.registered_models
        model_id = self._c.execute(sa.select(m.c.id).where(m.c.name == name).with_for_update()).scalar()
        return None if model_id is None else int(model_id)

    def next_version(self, name: str) -> int | None:
        """Hand out the model's next version number, holding its row lock until the transaction ends."""
        m = t.registered_models
        update = (
            m.update()
            .where(m.c.name == name)
            .values(latest_version=m.c.latest_version + 1)
            .returning(m.c.latest_version)
        )
        version = self._c.execute(update).scalar()
        return None if version is None else int(version)

    # -- artifacts --------------------------------------------------------------------------------------------

    def add_artifact(self, artifact: Artifact) -> None:
        """Record an artifact; a no-op when the same bytes were recorded before (deduplicated)."""
        details: dict[str, Any] = (
            {"signature": signature_json(artifact.signature)}
            if artifact.signature
            else {"dataset": {"columns": list(artifact.dataset.columns), "rows": artifact.dataset.rows}}
            if artifact.dataset
            else {}
        )
        insert = _insert_ignoring_conflicts(self._c, t.artifacts).values(
            digest=artifact.digest,
            size_bytes=artifact.size_bytes,
            media_type=artifact.media_type.value,
            details=details,
            created_by=artifact.created_by,
            created_at=artifact.created_at,
        )
        self._c.execute(insert)

    def get_artifact(self, digest: str) -> Artifact | None:
        row = self._c.execute(_ARTIFACT, {"digest": digest}).first()
        if row is None:
            return None
        details = row.details
        dataset = details.get("dataset")
        return Artifact(
            digest=row.digest,
            size_bytes=row.size_bytes,
            media_type=MediaType(row.media_type),
            created_by=row.created_by,
            created_at=row.created_at,
            signature=signature(details["signature"]) if "signature" in details else None,
            dataset=DatasetSchema(tuple(dataset["columns"]), dataset["rows"]) if dataset else None,
        )

    # -- model versions ---------------------------------------------------------------------------------------

    def add_version(self, version: ModelVersion) -> None:
        self._c.execute(
            t.model_versions.insert().values(
                model_id=self._model_id(version.model_name),
                version=version.version,
                digest=version.digest,
                reference_dataset_digest=version.reference_dataset_digest or None,
                lineage=lineage_json(version.lineage),
                feature_names={k: list(v) for k, v in version.feature_names.items()},
                status=version.status.value,
                status_message=version.status_message,
                created_by=version.created_by,
                created_at=version.created_at,
            )
        )
        self._replace_tags(self._model_id(version.model_name), version.version, version.tags)

    def get_version(self, name: str, version: int) -> ModelVersion | None:
        row = self._c.execute(_VERSION, {"name": name, "version": version}).first()
        return None if row is None else self._version(row)

    def list_versions(
        self,
        name: str,
        statuses: Sequence[VersionStatus],
        digest: str,
        tags: Mapping[str, str],
        after: tuple[str, int] | None,
        limit: int,
    ) -> list[ModelVersion]:
        """Versions by model name, then newest first; `after` is the (name, version) the previous page ended on."""
        m, v = t.registered_models, t.model_versions
        query = _versions_query().order_by(m.c.name, v.c.version.desc()).limit(limit)
        if name:
            query = query.where(m.c.name == name)
        if statuses:
            query = query.where(v.c.status.in_([s.value for s in statuses]))
        if digest:
            query = query.where(v.c.digest == digest)
        if after is not None:
            query = query.where(sa.or_(m.c.name > after[0], sa.and_(m.c.name == after[0], v.c.version < after[1])))
        query = _with_tags(query, v.c.model_id, v.c.version, tags)
        return [self._version(row) for row in self._c.execute(query)]

    def pending_versions(self, limit: int) -> list[tuple[str, int]]:
        m, v = t.registered_models, t.model_versions
        query = (
            sa.select(m.c.name, v.c.version)
            .join(m, m.c.id == v.c.model_id)
            .where(v.c.status == VersionStatus.PENDING_REGISTRATION.value)
            .order_by(v.c.id)
            .limit(limit)
        )
        return [(row.name, row.version) for row in self._c.execute(query)]

    def set_status(self, name: str, version: int, status: VersionStatus, message: str) -> None:
        v = t.model_versions
        self._c.execute(
            v.update()
            .where(v.c.model_id == self._model_id(name), v.c.version == version)
            .values(status=status.value, status_message=message)
        )

    # -- tags -------------------------------------------------------------------------------------------------

    def update_tags(self, name: str, version: int, set_tags: Mapping[str, str], remove: Sequence[str]) -> None:
        model_id = self._model_id(name)
        tag = t.tags
        keys = [*remove, *set_tags]
        self._c.execute(tag.delete().where(tag.c.model_id == model_id, tag.c.version == version, tag.c.key.in_(keys)))
        self._replace_tags(model_id, version, set_tags, clear=False)

    def tags_of(self, model_id: int, version: int) -> dict[str, str]:
        rows = self._c.execute(_TAGS, {"model_id": model_id, "version": version})
        return {row.key: row.value for row in rows}

    # -- aliases ----------------------------------------------------------------------------------------------

    def get_alias(self, name: str, alias: str) -> int | None:
        version = self._c.execute(_ALIAS, {"name": name, "alias": alias}).scalar()
        return None if version is None else int(version)

    def aliases_of(self, name: str) -> dict[str, int]:
        return {row.alias: row.version for row in self._c.execute(_ALIASES, {"name": name})}

    def move_alias(self, move: AliasMove) -> None:
        """Point (or delete, when `to_version` is None) an alias and append the move to its history."""
        model_id = self._model_id(move.model_name)
        a = t.aliases
        self._c.execute(a.delete().where(a.c.model_id == model_id, a.c.alias == move.alias))
        if move.to_version is not None:
            self._c.execute(a.insert().values(model_id=model_id, alias=move.alias, version=move.to_version))
        self._c.execute(
            t.alias_history.insert().values(
                model_id=model_id,
                alias=move.alias,
                from_version=move.from_version,
                to_version=move.to_version,
                moved_by=move.moved_by,
                moved_at=move.moved_at,
                reason=move.reason,
            )
        )

    def alias_history(self, name: str, alias: str, before_id: int | None, limit: int) -> list[tuple[int, AliasMove]]:
        """Moves of an alias, newest first, each with its cursor id."""
        h, m = t.alias_history, t.registered_models
        query = (
            sa.select(h, m.c.name)
            .join(m, m.c.id == h.c.model_id)
            .where(m.c.name == name, h.c.alias == alias)
            .order_by(h.c.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            query = query.where(h.c.id < before_id)
        return [(row.id, alias_move(row)) for row in self._c.execute(query)]

    def alias_as_of(self, name: str, alias: str, when: datetime) -> AliasMove | None:
        """The last move of the alias at or before `when` (its `to_version` is what the alias named then)."""
        h, m = t.alias_history, t.registered_models
        query = (
            sa.select(h, m.c.name)
            .join(m, m.c.id == h.c.model_id)
            .where(m.c.name == name, h.c.alias == alias, h.c.moved_at <= when)
            .order_by(h.c.moved_at.desc(), h.c.id.desc())
            .limit(1)
        )
        row = self._c.execute(query).first()
        return None if row is None else alias_move(row)

    # -- garbage collection -----------------------------------------------------------------------------------

    def referenced_digests(self) -> set[str]:
        """Every digest a version names, whatever its status: its model, its reference dataset and the training
        and evaluation datasets of its lineage; and every file of a tracked run or logged model."""
        v = t.model_versions
        referenced = self.tracked_file_digests()
        for row in self._c.execute(sa.select(v.c.digest, v.c.reference_dataset_digest, v.c.lineage)):
            referenced.update(
                (row.digest, *row.lineage["training_datasets"], *row.lineage["evaluation_datasets"]),
                [row.reference_dataset_digest] if row.reference_dataset_digest else [],
            )
        return referenced

    def lock_artifact(self, digest: str) -> None:
        """Hold the artifact's row until the transaction ends: a version that names it meanwhile waits for the
        lock (its foreign key check) on PostgreSQL; SQLite's writers hold the database lock from BEGIN IMMEDIATE."""
        a = t.artifacts
        self._c.execute(sa.select(a.c.digest).where(a.c.digest == digest).with_for_update())

    def delete_artifact(self, digest: str) -> None:
        self._c.execute(t.artifacts.delete().where(t.artifacts.c.digest == digest))

    # -- events -----------------------------------------------------------------------------------------------

    def record(self, event: Event) -> None:
        """Queue an event for the relay, committed (or rolled back) together with the change it describes."""
        outbox.enqueue(self._c, t.outbox, REGISTRY_EVENTS, event)

    # -- helpers ----------------------------------------------------------------------------------------------

    def _model_id(self, name: str) -> int:
        model_id = self._c.execute(_MODEL_ID, {"name": name}).scalar()
        if model_id is None:
            raise LookupError(f"model {name!r} vanished inside its transaction")
        return int(model_id)

    def _replace_tags(self, model_id: int, version: int, tags: Mapping[str, str], *, clear: bool = True) -> None:
        if clear:
            self._c.execute(t.tags.delete().where(t.tags.c.model_id == model_id, t.tags.c.version == version))
        if tags:
            self._c.execute(
                t.tags.insert(),
                [{"model_id": model_id, "version": version, "key": k, "value": v} for k, v in tags.items()],
            )

    def model_exists(self, name: str) -> bool:
        return self._c.execute(_MODEL_ID, {"name": name}).scalar() is not None

    def _model(self, row: sa.Row[Any]) -> RegisteredModel:
        return RegisteredModel(
            name=row.name,
            description=row.description,
            owner=row.owner,
            tags=self.tags_of(row.id, 0),
            created_by=row.created_by,
            created_at=row.created_at,
            latest_version=row.latest_version,
            aliases=self.aliases_of(row.name),
        )

    def _version(self, row: sa.Row[Any]) -> ModelVersion:
        return ModelVersion(
            model_name=row.name,
            version=row.version,
            digest=row.digest,
            size_bytes=row.size_bytes,
            media_type=MediaType(row.media_type),
            signature=signature(row.details["signature"]),
            lineage=lineage(row.lineage),
            feature_names={k: tuple(v) for k, v in row.feature_names.items()},
            reference_dataset_digest=row.reference_dataset_digest or "",
            status=VersionStatus(row.status),
            status_message=row.status_message,
            created_by=row.created_by,
            created_at=row.created_at,
            tags=self.tags_of(row.model_id, row.version),
            aliases=tuple(sorted(row.alias_names.split(","))) if row.alias_names else (),
        )


def _versions_query() -> sa.Select[Any]:
    """Versions with their artifact's facts and, in the same query, the aliases naming each (comma-joined: alias
    names have no commas), so that answering with a version costs one query."""
    m, v, a, al = t.registered_models, t.model_versions, t.artifacts, t.aliases
    naming = (
        sa.select(sa.func.aggregate_strings(al.c.alias, ","))
        .where(al.c.model_id == v.c.model_id, al.c.version == v.c.version)
        .scalar_subquery()
        .label("alias_names")
    )
    return (
        sa.select(v, m.c.name, a.c.size_bytes, a.c.media_type, a.c.details, naming)
        .join(m, m.c.id == v.c.model_id)
        .join(a, a.c.digest == v.c.digest)
    )


# The hot reads, built once: constructing SQLAlchemy expressions costs more than running these on SQLite.
_m, _v, _a = t.registered_models, t.model_versions, t.aliases
_MODEL_BY_NAME = sa.select(_m).where(_m.c.name == sa.bindparam("name"))
_MODEL_ID = sa.select(_m.c.id).where(_m.c.name == sa.bindparam("name"))
_VERSION = _versions_query().where(_m.c.name == sa.bindparam("name"), _v.c.version == sa.bindparam("version"))
_TAGS = (
    sa.select(t.tags.c.key, t.tags.c.value)
    .where(t.tags.c.model_id == sa.bindparam("model_id"), t.tags.c.version == sa.bindparam("version"))
    .order_by(t.tags.c.key)
)
_ALIAS = (
    sa.select(_a.c.version)
    .join(_m, _m.c.id == _a.c.model_id)
    .where(_m.c.name == sa.bindparam("name"), _a.c.alias == sa.bindparam("alias"))
)
_ALIASES = (
    sa.select(_a.c.alias, _a.c.version)
    .join(_m, _m.c.id == _a.c.model_id)
    .where(_m.c.name == sa.bindparam("name"))
    .order_by(_a.c.alias)
)
_ARTIFACT = sa.select(t.artifacts).where(t.artifacts.c.digest == sa.bindparam("digest"))


def _with_tags(query: sa.Select[Any], model_id: Any, version: Any, tags: Mapping[str, str]) -> sa.Select[Any]:
    """Keep rows that carry every given tag (key and value)."""
    for key, value in tags.items():
        tag = t.tags
        query = query.where(
            sa.exists().where(
                tag.c.model_id == model_id, tag.c.version == version, tag.c.key == key, tag.c.value == value
            )
        )
    return query


def _insert_ignoring_conflicts(connection: Connection, table: sa.Table) -> Any:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"the registry supports SQLite and PostgreSQL, not {dialect!r}")
