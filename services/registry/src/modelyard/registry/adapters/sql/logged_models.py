"""MLflow 3's logged models in the registry's SQL transactions (a mixin of `RegistryTransaction`, so that
registering a logged model reads it and writes the version in one transaction)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from modelyard.registry.adapters.sql import schema as t
from modelyard.registry.adapters.sql.tracking import (
    SearchScope,
    TrackingQueries,
    condition,
    order_column,
    upsert_pairs,
)
from modelyard.registry.domain.logged_models import LoggedModel, LoggedModelStatus
from modelyard.registry.domain.run_filter import Clause, Field, OrderKey
from modelyard.registry.domain.tracking import LifecycleStage, Metric, ModelOutput

_lm = t.logged_models
LOGGED_MODEL_SCOPE = SearchScope(
    _lm.c.model_id,
    {
        "model_id": _lm.c.model_id,
        "name": _lm.c.name,
        "status": _lm.c.status,
        "source_run_id": _lm.c.source_run_id,
        "model_type": _lm.c.model_type,
        "creation_timestamp": _lm.c.created_ms,
        "last_updated_timestamp": _lm.c.updated_ms,
    },
    {
        Field.METRIC: (t.logged_model_metrics, "model_id"),
        Field.PARAM: (t.logged_model_params, "model_id"),
        Field.TAG: (t.logged_model_tags, "model_id"),
    },
)


class LoggedModelQueries(TrackingQueries):
    def add_logged_model(self, model: LoggedModel) -> None:
        self._c.execute(
            _lm.insert().values(
                model_id=model.model_id,
                experiment_id=int(model.experiment_id),
                name=model.name,
                source_run_id=model.source_run_id or None,
                status=model.status.value,
                status_message=model.status_message,
                model_type=model.model_type,
                creator=model.creator,
                created_ms=model.created_ms,
                updated_ms=model.updated_ms,
                lifecycle_stage=model.lifecycle_stage.value,
            )
        )
        self.set_logged_model_params(model.model_id, model.params)
        self.set_logged_model_tags(model.model_id, model.tags)

    def get_logged_model(self, model_id: str) -> LoggedModel | None:
        found = self._logged_models(self._c.execute(sa.select(_lm).where(_lm.c.model_id == model_id)).all())
        return found[0] if found else None

    def update_logged_model(self, model_id: str, **values: Any) -> None:
        """Change the model's status, status_message, lifecycle_stage or updated_ms."""
        self._c.execute(_lm.update().where(_lm.c.model_id == model_id).values(**values))

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        clauses: Sequence[Clause],
        order: Sequence[OrderKey],
        offset: int,
        limit: int,
    ) -> list[LoggedModel]:
        query = sa.select(_lm).where(
            _lm.c.experiment_id.in_([int(e) for e in experiment_ids]),
            _lm.c.lifecycle_stage == LifecycleStage.ACTIVE.value,
        )
        for clause in clauses:
            query = query.where(condition(clause, LOGGED_MODEL_SCOPE))
        ordering = [order_column(key, LOGGED_MODEL_SCOPE) for key in order]
        query = query.order_by(*ordering, _lm.c.created_ms.desc(), _lm.c.model_id).offset(offset).limit(limit)
        return self._logged_models(self._c.execute(query).all())

    def set_logged_model_params(self, model_id: str, params: Mapping[str, str]) -> None:
        upsert_pairs(self._c, t.logged_model_params, {"model_id": model_id}, params)

    def set_logged_model_tags(self, model_id: str, tags: Mapping[str, str]) -> None:
        upsert_pairs(self._c, t.logged_model_tags, {"model_id": model_id}, tags)

    def delete_logged_model_tag(self, model_id: str, key: str) -> bool:
        lt = t.logged_model_tags
        return self._c.execute(lt.delete().where(lt.c.model_id == model_id, lt.c.key == key)).rowcount > 0

    def add_logged_model_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        """Record values about logged models (each names its model), as logged to `run_id`."""
        rows = [
            {"model_id": m.model_id, "key": m.key, "step": m.step, "timestamp_ms": m.timestamp_ms, "value": m.value}
            for m in metrics
        ]
        if rows:
            self._c.execute(t.logged_model_metrics.insert(), [{**row, "run_id": run_id} for row in rows])

    def add_run_outputs(self, run_id: str, outputs: Sequence[ModelOutput]) -> None:
        o = t.run_outputs
        for output in outputs:
            self._c.execute(o.delete().where(o.c.run_id == run_id, o.c.model_id == output.model_id))
            self._c.execute(o.insert().values(run_id=run_id, model_id=output.model_id, step=output.step))

    def _logged_models(self, rows: Sequence[sa.Row[Any]]) -> list[LoggedModel]:
        ids = [row.model_id for row in rows]
        params = self._pairs(t.logged_model_params, ids, "model_id")
        tags = self._pairs(t.logged_model_tags, ids, "model_id")
        metrics: dict[str, list[Metric]] = {}
        m = t.logged_model_metrics
        for row in self._c.execute(sa.select(m).where(m.c.model_id.in_(ids)).order_by(m.c.key, m.c.step, m.c.id)):
            metrics.setdefault(row.model_id, []).append(
                Metric(row.key, row.value, row.timestamp_ms, row.step, row.model_id)
            )
        return [
            LoggedModel(
                model_id=row.model_id,
                experiment_id=str(row.experiment_id),
                name=row.name,
                source_run_id=row.source_run_id or "",
                status=LoggedModelStatus(row.status),
                creator=row.creator,
                created_ms=row.created_ms,
                updated_ms=row.updated_ms,
                model_type=row.model_type,
                status_message=row.status_message,
                lifecycle_stage=LifecycleStage(row.lifecycle_stage),
                params=params.get(row.model_id, {}),
                tags=tags.get(row.model_id, {}),
                metrics=tuple(metrics.get(row.model_id, ())),
            )
            for row in rows
        ]
