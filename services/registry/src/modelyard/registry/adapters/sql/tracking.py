"""Experiment tracking queries of the registry's SQL transactions (a mixin of `RegistryTransaction`, so that
registering a model from a run reads the run and writes the version in one transaction)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelyard.registry.adapters.sql import schema as t
from modelyard.registry.domain.run_filter import Clause, Field, OrderKey
from modelyard.registry.domain.tracking import (
    DatasetInput,
    Experiment,
    LifecycleStage,
    Metric,
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
_ATTRIBUTE_COLUMNS = {
    "run_id": _r.c.run_id,
    "run_name": _r.c.name,
    "status": _r.c.status,
    "user_id": _r.c.user_id,
    "start_time": _r.c.start_ms,
    "end_time": _r.c.end_ms,
    "lifecycle_stage": _r.c.lifecycle_stage,
}


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
        _upsert(self._c, t.experiment_tags, {"experiment_id": int(experiment_id)}, tags)

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
            query = query.where(_condition(clause))
        ordering = [_order_column(key) for key in order]
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
            )
            for row in rows
        ]

    def _pairs(self, table: sa.Table, run_ids: list[str]) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        query = sa.select(table.c.run_id, table.c.key, table.c.value).where(table.c.run_id.in_(run_ids))
        for run_id, key, value in self._c.execute(query):
            found.setdefault(run_id, {})[key] = value
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
        _upsert(self._c, t.run_tags, {"run_id": run_id}, tags)

    def delete_run_tag(self, run_id: str, key: str) -> bool:
        rt = t.run_tags
        return self._c.execute(rt.delete().where(rt.c.run_id == run_id, rt.c.key == key)).rowcount > 0

    def add_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        """Append to the history and move each metric's latest value forward."""
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

    def put_run_artifact(self, run_id: str, artifact: RunArtifact) -> None:
        ra = t.run_artifacts
        self._c.execute(ra.delete().where(ra.c.run_id == run_id, ra.c.path == artifact.path))
        values = {"path": artifact.path, "digest": artifact.digest, "size_bytes": artifact.size_bytes}
        self._c.execute(ra.insert().values(run_id=run_id, **values))

    def run_artifacts(self, run_id: str, prefix: str) -> list[RunArtifact]:
        """The run's files at `prefix` or under it (every file when `prefix` is empty), by path."""
        ra = t.run_artifacts
        query = sa.select(ra.c.path, ra.c.digest, ra.c.size_bytes).where(ra.c.run_id == run_id).order_by(ra.c.path)
        if prefix:
            query = query.where(sa.or_(ra.c.path == prefix, ra.c.path.startswith(prefix + "/", autoescape=True)))
        return [RunArtifact(row.path, row.digest, row.size_bytes) for row in self._c.execute(query)]

    def run_artifact_digests(self) -> set[str]:
        return set(self._c.execute(sa.select(t.run_artifacts.c.digest).distinct()).scalars())


def _upsert(c: Connection, table: sa.Table, owner: Mapping[str, Any], pairs: Mapping[str, str]) -> None:
    if not pairs:
        return
    match = [table.c[name] == value for name, value in owner.items()]
    c.execute(table.delete().where(*match, table.c.key.in_(list(pairs))))
    c.execute(table.insert(), [{**owner, "key": k, "value": v} for k, v in pairs.items()])


def _condition(clause: Clause) -> Any:
    compare = _COMPARE[clause.op.removeprefix("NOT ") if clause.op in ("NOT LIKE", "NOT ILIKE") else clause.op]
    negate = clause.op in ("NOT LIKE", "NOT ILIKE")
    if clause.field is Field.ATTRIBUTE:
        if clause.key == "artifact_uri":
            # The artifact URI is derived from the ids, so compare against the same expression.
            column: Any = sa.literal("mlflow-artifacts:/") + sa.cast(_r.c.experiment_id, sa.String) + "/"
            column = column + _r.c.run_id + "/artifacts"
        else:
            column = _ATTRIBUTE_COLUMNS[clause.key]
        condition = compare(column, clause.value)
        return sa.not_(condition) if negate else condition
    table = {
        Field.METRIC: t.run_latest_metrics,
        Field.PARAM: t.run_params,
        Field.TAG: t.run_tags,
        Field.DATASET: t.run_inputs,
    }[clause.field]
    if clause.field is Field.DATASET:
        inner = compare(table.c[clause.key], clause.value)
        where = [table.c.run_id == _r.c.run_id, sa.not_(inner) if negate else inner]
    else:
        inner = compare(table.c.value, clause.value)
        where = [table.c.run_id == _r.c.run_id, table.c.key == clause.key, sa.not_(inner) if negate else inner]
    return sa.exists().where(*where)


def _order_column(key: OrderKey) -> Any:
    if key.field is Field.ATTRIBUTE:
        column: Any = _ATTRIBUTE_COLUMNS.get(key.key, _r.c.run_id)
    else:
        table = {Field.METRIC: t.run_latest_metrics, Field.PARAM: t.run_params, Field.TAG: t.run_tags}[key.field]
        column = sa.select(table.c.value).where(table.c.run_id == _r.c.run_id, table.c.key == key.key).scalar_subquery()
    # Runs without the value sort last either way, as MLflow does.
    return (column.desc() if key.descending else column.asc()).nulls_last()
