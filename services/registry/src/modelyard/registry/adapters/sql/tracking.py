"""Experiment tracking queries of the registry's SQL transactions (a mixin of `RegistryTransaction`, so that
registering a model from a run reads the run and writes the version in one transaction)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelyard.registry.adapters.sql import schema as t
from modelyard.registry.domain.logged_models import is_model_id
from modelyard.registry.domain.run_filter import Clause, Field, OrderKey
from modelyard.registry.domain.tracking import (
    DatasetInput,
    Experiment,
    LifecycleStage,
    Metric,
    ModelOutput,
    Run,
    RunArtifact,
    RunStatus,
)

_e, _r = t.experiments, t.runs
Comparison = Callable[[Any, Any], Any]
_COMPARE: dict[str, Comparison] = {
    "=": lambda col, v: col == v,
    "!=": lambda col, v: col != v,
    ">": lambda col, v: col > v,
    ">=": lambda col, v: col >= v,
    "<": lambda col, v: col < v,
    "<=": lambda col, v: col <= v,
    "IN": lambda col, v: col.in_(v),
    "NOT IN": lambda col, v: col.not_in(v),
    "LIKE": lambda col, v: col.like(v),
    "ILIKE": lambda col, v: col.ilike(v),
}


@dataclass(frozen=True)
class SearchScope:
    """What a parsed filter or ORDER BY names, in SQL: the searched entity's id column, its attributes, and per
    field (metrics, params, tags, datasets) the table of its values with the name of that table's id column."""

    owner: Any
    attributes: Mapping[str, Any]
    tables: Mapping[Field, tuple[sa.Table, str]]


RUN_SCOPE = SearchScope(
    _r.c.run_id,
    {
        "run_id": _r.c.run_id,
        "run_name": _r.c.name,
        "status": _r.c.status,
        "user_id": _r.c.user_id,
        "start_time": _r.c.start_ms,
        "end_time": _r.c.end_ms,
        "lifecycle_stage": _r.c.lifecycle_stage,
        # The artifact URI is derived from the ids, so compare against the same expression.
        "artifact_uri": sa.literal("mlflow-artifacts:/")
        + sa.cast(_r.c.experiment_id, sa.String)
        + "/"
        + _r.c.run_id
        + "/artifacts",
    },
    {
        Field.METRIC: (t.run_latest_metrics, "run_id"),
        Field.PARAM: (t.run_params, "run_id"),
        Field.TAG: (t.run_tags, "run_id"),
        Field.DATASET: (t.run_inputs, "run_id"),
    },
)


class TrackingQueries:
    _c: Connection

    # -- experiments ------------------------------------------------------------------------------------------

    def add_experiment(self, name: str, tags: Mapping[str, str], now_ms: int) -> str | None:
        """The new experiment's id; None (nothing written) when the name is taken."""
        if self._c.execute(sa.select(_e.c.id).where(_e.c.name == name)).first() is not None:
            return None
        values = {"name": name, "lifecycle_stage": LifecycleStage.ACTIVE.value, "created_ms": now_ms}
        experiment_id = self._c.execute(_e.insert().values(**values, updated_ms=now_ms).returning(_e.c.id)).scalar()
        self.set_experiment_tags(str(experiment_id), tags)
        return str(experiment_id)

    def get_experiment(self, experiment_id: str | None = None, name: str | None = None) -> Experiment | None:
        query = sa.select(_e).where(_e.c.id == int(experiment_id) if experiment_id is not None else _e.c.name == name)
        row = self._c.execute(query).first()
        return None if row is None else self._experiment(row)

    def list_experiments(self, stage: LifecycleStage | None, after_id: int, limit: int) -> list[Experiment]:
        query = sa.select(_e).where(_e.c.id > after_id).order_by(_e.c.id).limit(limit)
        if stage is not None:
            query = query.where(_e.c.lifecycle_stage == stage.value)
        return [self._experiment(row) for row in self._c.execute(query)]

    def set_experiment_tags(self, experiment_id: str, tags: Mapping[str, str]) -> None:
        upsert_pairs(self._c, t.experiment_tags, {"experiment_id": int(experiment_id)}, tags)

    def _experiment(self, row: sa.Row[Any]) -> Experiment:
        tags = t.experiment_tags
        pairs = self._c.execute(sa.select(tags.c.key, tags.c.value).where(tags.c.experiment_id == row.id))
        return Experiment(
            experiment_id=str(row.id),
            name=row.name,
            artifact_location=f"mlflow-artifacts:/{row.id}",
            lifecycle_stage=LifecycleStage(row.lifecycle_stage),
            created_ms=row.created_ms,
            updated_ms=row.updated_ms,
            tags={key: value for key, value in pairs},
        )

    # -- runs -------------------------------------------------------------------------------------------------

    def add_run(self, run: Run) -> None:
        self._c.execute(
            _r.insert().values(
                run_id=run.run_id,
                experiment_id=int(run.experiment_id),
                name=run.name,
                status=run.status.value,
                user_id=run.user,
                start_ms=run.start_ms,
                end_ms=run.end_ms,
                lifecycle_stage=run.lifecycle_stage.value,
            )
        )
        self.set_run_tags(run.run_id, run.tags)

    def update_run(self, run_id: str, **values: Any) -> None:
        """Change columns of the run (name, status, end_ms, lifecycle_stage)."""
        self._c.execute(_r.update().where(_r.c.run_id == run_id).values(**values))

    def get_run(self, run_id: str) -> Run | None:
        runs = self._runs(self._c.execute(sa.select(_r).where(_r.c.run_id == run_id)).all())
        return runs[0] if runs else None

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        clauses: Sequence[Clause],
        order: Sequence[OrderKey],
        stage: LifecycleStage | None,
        offset: int,
        limit: int,
    ) -> list[Run]:
        query = sa.select(_r).where(_r.c.experiment_id.in_([int(e) for e in experiment_ids]))
        if stage is not None:
            query = query.where(_r.c.lifecycle_stage == stage.value)
        for clause in clauses:
            query = query.where(condition(clause, RUN_SCOPE))
        ordering = [order_column(key, RUN_SCOPE) for key in order]
        query = query.order_by(*ordering, _r.c.start_ms.desc(), _r.c.run_id).offset(offset).limit(limit)
        return self._runs(self._c.execute(query).all())

    def _runs(self, rows: Sequence[sa.Row[Any]]) -> list[Run]:
        ids = [row.run_id for row in rows]
        params, tags = self._pairs(t.run_params, ids), self._pairs(t.run_tags, ids)
        metrics: dict[str, dict[str, Metric]] = {}
        m = t.run_latest_metrics
        for row in self._c.execute(sa.select(m).where(m.c.run_id.in_(ids))):
            metrics.setdefault(row.run_id, {})[row.key] = Metric(row.key, row.value, row.timestamp_ms, row.step)
        inputs: dict[str, list[DatasetInput]] = {}
        i = t.run_inputs
        for row in self._c.execute(sa.select(i).where(i.c.run_id.in_(ids)).order_by(i.c.name, i.c.digest)):
            inputs.setdefault(row.run_id, []).append(DatasetInput(row.digest, row.name, row.context, **row.details))
        outputs: dict[str, list[ModelOutput]] = {}
        o = t.run_outputs
        for row in self._c.execute(sa.select(o).where(o.c.run_id.in_(ids)).order_by(o.c.step, o.c.model_id)):
            outputs.setdefault(row.run_id, []).append(ModelOutput(row.model_id, row.step))
        return [
            Run(
                run_id=row.run_id,
                experiment_id=str(row.experiment_id),
                name=row.name,
                status=RunStatus(row.status),
                user=row.user_id,
                start_ms=row.start_ms,
                end_ms=row.end_ms,
                lifecycle_stage=LifecycleStage(row.lifecycle_stage),
                params=params.get(row.run_id, {}),
                metrics=metrics.get(row.run_id, {}),
                tags=tags.get(row.run_id, {}),
                inputs=tuple(inputs.get(row.run_id, ())),
                outputs=tuple(outputs.get(row.run_id, ())),
            )
            for row in rows
        ]

    def _pairs(self, table: sa.Table, ids: list[str], owner: str = "run_id") -> dict[str, dict[str, str]]:
        """Key/value pairs (params, tags) of each of the `ids`, by id (`owner`: the table's id column)."""
        found: dict[str, dict[str, str]] = {}
        query = sa.select(table.c[owner], table.c.key, table.c.value).where(table.c[owner].in_(ids))
        for owner_id, key, value in self._c.execute(query):
            found.setdefault(owner_id, {})[key] = value
        return found

    # -- parameters, metrics, tags, inputs --------------------------------------------------------------------

    def params_of(self, run_id: str, keys: Iterable[str]) -> dict[str, str]:
        p = t.run_params
        query = sa.select(p.c.key, p.c.value).where(p.c.run_id == run_id, p.c.key.in_(list(keys)))
        return {key: value for key, value in self._c.execute(query)}

    def add_params(self, run_id: str, params: Mapping[str, str]) -> None:
        if params:
            self._c.execute(
                t.run_params.insert(), [{"run_id": run_id, "key": k, "value": v} for k, v in params.items()]
            )

    def set_run_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        upsert_pairs(self._c, t.run_tags, {"run_id": run_id}, tags)

    def delete_run_tag(self, run_id: str, key: str) -> bool:
        rt = t.run_tags
        return self._c.execute(rt.delete().where(rt.c.run_id == run_id, rt.c.key == key)).rowcount > 0

    def add_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        """Append to the history and move each metric's latest value forward. A value about a logged model that the
        history already holds is not appended again (MLflow's client copies the run's values to its model)."""
        if any(m.model_id for m in metrics):
            logged = self._known_values(run_id, {m.key for m in metrics if m.model_id})
            metrics = [m for m in metrics if not m.model_id or (m.key, m.step, m.timestamp_ms, m.value) not in logged]
        if not metrics:
            return
        rows = [
            {"run_id": run_id, "key": m.key, "step": m.step, "timestamp_ms": m.timestamp_ms, "value": m.value}
            for m in metrics
        ]
        self._c.execute(t.run_metrics.insert(), rows)
        latest: dict[str, Metric] = {}
        for metric in metrics:
            if metric.key not in latest or metric.is_after(latest[metric.key]):
                latest[metric.key] = metric
        lm = t.run_latest_metrics
        stored = self._c.execute(sa.select(lm).where(lm.c.run_id == run_id, lm.c.key.in_(list(latest))))
        known = {row.key: Metric(row.key, row.value, row.timestamp_ms, row.step) for row in stored}
        for key, metric in latest.items():
            values = {"step": metric.step, "timestamp_ms": metric.timestamp_ms, "value": metric.value}
            if key not in known:
                self._c.execute(lm.insert().values(run_id=run_id, key=key, **values))
            elif metric.is_after(known[key]):
                self._c.execute(lm.update().where(lm.c.run_id == run_id, lm.c.key == key).values(**values))

    def _known_values(self, run_id: str, keys: set[str]) -> set[tuple[str, int, int, float]]:
        m = t.run_metrics
        query = sa.select(m.c.key, m.c.step, m.c.timestamp_ms, m.c.value).where(m.c.run_id == run_id, m.c.key.in_(keys))
        return {(row.key, row.step, row.timestamp_ms, row.value) for row in self._c.execute(query)}

    def metric_history(self, run_id: str, key: str, offset: int, limit: int) -> list[Metric]:
        m = t.run_metrics
        query = (
            sa.select(m.c.step, m.c.timestamp_ms, m.c.value)
            .where(m.c.run_id == run_id, m.c.key == key)
            .order_by(m.c.step, m.c.timestamp_ms, m.c.id)
            .offset(offset)
            .limit(limit)
        )
        return [Metric(key, row.value, row.timestamp_ms, row.step) for row in self._c.execute(query)]

    def add_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        i = t.run_inputs
        for item in inputs:
            key = (i.c.run_id == run_id, i.c.digest == item.digest, i.c.context == item.context)
            if self._c.execute(sa.select(i.c.run_id).where(*key)).first() is None:
                details = {k: getattr(item, k) for k in ("source_type", "source", "schema", "profile")}
                values = {"digest": item.digest, "context": item.context, "name": item.name, "details": details}
                self._c.execute(i.insert().values(run_id=run_id, **values))

    # -- files ------------------------------------------------------------------------------------------------

    def put_file(self, owner: str, artifact: RunArtifact) -> None:
        """Name a file of a run or of a logged model (`owner`: the run's id or the model's `m-...`)."""
        table, column = _files_of(owner)
        self._c.execute(table.delete().where(column == owner, table.c.path == artifact.path))
        values = {"path": artifact.path, "digest": artifact.digest, "size_bytes": artifact.size_bytes}
        self._c.execute(table.insert().values({column.name: owner, **values}))

    def files(self, owner: str, prefix: str) -> list[RunArtifact]:
        """The owner's files at `prefix` or under it (every file when `prefix` is empty), by path."""
        table, column = _files_of(owner)
        query = sa.select(table.c.path, table.c.digest, table.c.size_bytes).where(column == owner)
        if prefix:
            path = table.c.path
            query = query.where(sa.or_(path == prefix, path.startswith(prefix + "/", autoescape=True)))
        return [RunArtifact(row.path, row.digest, row.size_bytes) for row in self._c.execute(query.order_by("path"))]

    def tracked_file_digests(self) -> set[str]:
        """The digests of every file of a run or a logged model (garbage collection keeps them)."""
        runs = sa.select(t.run_artifacts.c.digest)
        models = sa.select(t.logged_model_artifacts.c.digest)
        return set(self._c.execute(sa.union(runs, models)).scalars())


def _files_of(owner: str) -> tuple[sa.Table, Any]:
    if is_model_id(owner):
        return t.logged_model_artifacts, t.logged_model_artifacts.c.model_id
    return t.run_artifacts, t.run_artifacts.c.run_id


def upsert_pairs(c: Connection, table: sa.Table, owner: Mapping[str, Any], pairs: Mapping[str, str]) -> None:
    if not pairs:
        return
    match = [table.c[name] == value for name, value in owner.items()]
    c.execute(table.delete().where(*match, table.c.key.in_(list(pairs))))
    c.execute(table.insert(), [{**owner, "key": k, "value": v} for k, v in pairs.items()])


def condition(clause: Clause, scope: SearchScope) -> Any:
    """The WHERE term of one filter clause over the scope's entity."""
    negate = clause.op in ("NOT LIKE", "NOT ILIKE")
    compare = _COMPARE[clause.op.removeprefix("NOT ") if negate else clause.op]
    if clause.field is Field.ATTRIBUTE:
        term = compare(scope.attributes[clause.key], clause.value)
        return sa.not_(term) if negate else term
    table, owner = scope.tables[clause.field]
    if clause.field is Field.DATASET:
        inner = compare(table.c[clause.key], clause.value)
        where = [table.c[owner] == scope.owner, sa.not_(inner) if negate else inner]
    else:
        inner = compare(table.c.value, clause.value)
        where = [table.c[owner] == scope.owner, table.c.key == clause.key, sa.not_(inner) if negate else inner]
    return sa.exists().where(*where)


def order_column(key: OrderKey, scope: SearchScope) -> Any:
    if key.field is Field.ATTRIBUTE:
        column: Any = scope.attributes.get(key.key, scope.owner)
    else:
        table, owner = scope.tables[key.field]
        values = sa.select(table.c.value).where(table.c[owner] == scope.owner, table.c.key == key.key)
        if "step" in table.c:  # a history: its latest value
            values = values.order_by(table.c.step.desc(), table.c.timestamp_ms.desc()).limit(1)
        column = values.scalar_subquery()
    # Entities without the value sort last either way, as MLflow does.
    return (column.desc() if key.descending else column.asc()).nulls_last()
