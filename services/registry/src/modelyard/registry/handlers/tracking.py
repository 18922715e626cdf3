"""The registry's use cases, experiment tracking: experiments, runs, parameters, metric history, tags, inputs and
search (MLflow's model and limits, so that its client works unchanged)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from modelyard.auth import Principal
from modelyard.registry.domain.errors import AlreadyExists, InvalidArgument, NotFound
from modelyard.registry.domain.pagination import Page, decode_token, encode_token, page_size
from modelyard.registry.domain.ports import RegistryTransaction
from modelyard.registry.domain.run_filter import parse_filter, parse_order_by
from modelyard.registry.domain.tracking import (
    MAX_BATCH_METRICS,
    MAX_BATCH_PARAMS,
    MAX_BATCH_TAGS,
    MAX_PARAM_VALUE,
    RUN_NAME_TAG,
    DatasetInput,
    Experiment,
    LifecycleStage,
    Metric,
    Run,
    RunStatus,
    parse_status,
    validate_experiment_id,
    validate_experiment_name,
    validate_key,
    validate_run_id,
    validate_tags,
    validate_value,
)
from modelyard.registry.handlers.base import PUBLISH, READ, UseCases

MAX_SEARCH_RESULTS = 50_000  # MLflow's own bound on max_results


@dataclass(frozen=True)
class RunQuery:
    experiment_ids: tuple[str, ...]
    filter: str = ""
    order_by: tuple[str, ...] = ()
    stage: LifecycleStage | None = LifecycleStage.ACTIVE


@dataclass(frozen=True)
class RunLog:
    """One log_batch: metrics appended to their history, parameters (write-once) and tags."""

    metrics: Sequence[Metric] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)


def existing_run(tx: RegistryTransaction, run_id: str) -> Run:
    run = tx.get_run(validate_run_id(run_id))
    if run is None:
        raise NotFound(f"run {run_id!r} not found")
    return run


def existing_experiment(tx: RegistryTransaction, experiment_id: str) -> Experiment:
    experiment = tx.get_experiment(validate_experiment_id(experiment_id))
    if experiment is None:
        raise NotFound(f"experiment {experiment_id!r} not found")
    return experiment


class TrackingUseCases(UseCases):
    def _now_ms(self) -> int:
        return int(self._now().timestamp() * 1000)

    def create_experiment(self, principal: Principal, name: str, tags: Mapping[str, str] = {}) -> str:
        principal.require("create experiments", PUBLISH)
        validate_experiment_name(name)
        with self._store.transaction(write=True) as tx:
            experiment_id = tx.add_experiment(name, validate_tags(tags), self._now_ms())
        if experiment_id is None:
            raise AlreadyExists(f"experiment {name!r} already exists")
        return experiment_id

    def get_experiment(self, principal: Principal, experiment_id: str = "", name: str = "") -> Experiment:
        principal.require("read experiments", READ)
        with self._store.transaction() as tx:
            if name:
                experiment = tx.get_experiment(name=name)
                if experiment is None:
                    raise NotFound(f"experiment {name!r} not found")
                return experiment
            return existing_experiment(tx, experiment_id)

    def list_experiments(
        self, principal: Principal, stage: LifecycleStage | None, size: int = 0, token: str = ""
    ) -> Page[Experiment]:
        principal.require("list experiments", READ)
        limit = page_size(size)
        after = decode_token(token, int)
        with self._store.transaction() as tx:
            found = tx.list_experiments(stage, after[0] if after else -1, limit)
        return Page(found, encode_token(int(found[-1].experiment_id)) if len(found) == limit else "")

    def set_experiment_tag(self, principal: Principal, experiment_id: str, key: str, value: str) -> None:
        principal.require("tag experiments", PUBLISH)
        tags = validate_tags({key: value})
        with self._store.transaction(write=True) as tx:
            existing_experiment(tx, experiment_id)
            tx.set_experiment_tags(experiment_id, tags)

    def create_run(
        self,
        principal: Principal,
        experiment_id: str,
        name: str = "",
        start_ms: int = 0,
        tags: Mapping[str, str] = {},
    ) -> Run:
        principal.require("create runs", PUBLISH)
        tags = validate_tags(tags)
        run_id = uuid.uuid4().hex
        name = validate_value(name or tags.get(RUN_NAME_TAG, "") or f"run-{run_id[:8]}", 250, "run name")
        run = Run(
            run_id=run_id,
            experiment_id=experiment_id,
            name=name,
            status=RunStatus.RUNNING,
            user=principal.name,  # who the token says, not what the client claims
            start_ms=start_ms or self._now_ms(),
            end_ms=None,
            tags={**tags, RUN_NAME_TAG: name},
        )
        with self._store.transaction(write=True) as tx:
            if existing_experiment(tx, experiment_id).lifecycle_stage is not LifecycleStage.ACTIVE:
                raise InvalidArgument(f"experiment {experiment_id} is deleted: runs cannot be added to it")
            tx.add_run(run)
        return run

    def update_run(
        self, principal: Principal, run_id: str, status: str = "", end_ms: int | None = None, name: str = ""
    ) -> Run:
        principal.require("update runs", PUBLISH)
        values: dict[str, object] = {}
        if status:
            values["status"] = parse_status(RunStatus, status, "run status").value
        if end_ms is not None:
            values["end_ms"] = end_ms
        if name:
            values["name"] = validate_value(name, 250, "run name")
        with self._store.transaction(write=True) as tx:
            existing_run(tx, run_id)
            if values:
                tx.update_run(run_id, **values)
            if name:
                tx.set_run_tags(run_id, {RUN_NAME_TAG: name})
            return existing_run(tx, run_id)

    def set_run_lifecycle(self, principal: Principal, run_id: str, stage: LifecycleStage) -> None:
        principal.require("delete and restore runs", PUBLISH)
        with self._store.transaction(write=True) as tx:
            existing_run(tx, run_id)
            tx.update_run(run_id, lifecycle_stage=stage.value)

    def get_run(self, principal: Principal, run_id: str) -> Run:
        principal.require("read runs", READ)
        with self._store.transaction() as tx:
            return existing_run(tx, run_id)

    def log(self, principal: Principal, run_id: str, batch: RunLog) -> None:
        """Log a batch in one transaction: all of it, or (on any bad item) none of it."""
        principal.require("log to runs", PUBLISH)
        if len(batch.metrics) > MAX_BATCH_METRICS or len(batch.params) > MAX_BATCH_PARAMS:
            raise InvalidArgument(
                f"a batch holds at most {MAX_BATCH_METRICS} metrics and {MAX_BATCH_PARAMS} parameters"
            )
        if len(batch.tags) > MAX_BATCH_TAGS:
            raise InvalidArgument(f"a batch holds at most {MAX_BATCH_TAGS} tags")
        metrics = [metric.validated() for metric in batch.metrics]
        params = {
            validate_key(k, "param"): validate_value(v, MAX_PARAM_VALUE, "param") for k, v in batch.params.items()
        }
        tags = validate_tags(batch.tags)
        with self._store.transaction(write=True) as tx:
            if existing_run(tx, run_id).lifecycle_stage is not LifecycleStage.ACTIVE:
                raise InvalidArgument(f"run {run_id} is deleted: restore it before logging to it")
            known = tx.params_of(run_id, params)
            changed = sorted(k for k, v in known.items() if v != params[k])
            if changed:
                raise InvalidArgument(
                    f"parameters are logged once: {', '.join(changed)[:200]} already logged with other values"
                )
            tx.add_params(run_id, {k: v for k, v in params.items() if k not in known})
            about_models = [m for m in metrics if m.model_id]
            for model_id in sorted({m.model_id for m in about_models}):
                if tx.get_logged_model(model_id) is None:
                    raise NotFound(f"logged model {model_id[:40]!r} not found")
            tx.add_logged_model_metrics(run_id, about_models)
            tx.add_metrics(run_id, metrics)
            tx.set_run_tags(run_id, tags)

    def delete_run_tag(self, principal: Principal, run_id: str, key: str) -> None:
        principal.require("change run tags", PUBLISH)
        with self._store.transaction(write=True) as tx:
            existing_run(tx, run_id)
            if not tx.delete_run_tag(run_id, key):
                raise NotFound(f"run {run_id} has no tag {key[:100]!r}")

    def log_inputs(self, principal: Principal, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        principal.require("log to runs", PUBLISH)
        for item in inputs:
            if not item.digest or not item.name:
                raise InvalidArgument("a dataset input needs a name and a digest")
            validate_value(item.digest, 128, "dataset digest")
            validate_value(item.context, 64, "dataset context")
        with self._store.transaction(write=True) as tx:
            existing_run(tx, run_id)
            tx.add_inputs(run_id, inputs)

    def metric_history(
        self, principal: Principal, run_id: str, key: str, size: int = 0, token: str = ""
    ) -> Page[Metric]:
        principal.require("read runs", READ)
        limit = min(size or 25_000, 25_000)  # MLflow's page of history
        offset = decode_token(token, int)
        start = offset[0] if offset else 0
        with self._store.transaction() as tx:
            existing_run(tx, run_id)
            found = tx.metric_history(run_id, validate_key(key, "metric"), start, limit)
        return Page(found, encode_token(start + limit) if len(found) == limit else "")

    def search_runs(self, principal: Principal, query: RunQuery, size: int = 0, token: str = "") -> Page[Run]:
        principal.require("search runs", READ)
        if not query.experiment_ids:
            raise InvalidArgument("name at least one experiment to search")
        if size < 0 or size > MAX_SEARCH_RESULTS:
            raise InvalidArgument(f"max_results must be between 1 and {MAX_SEARCH_RESULTS}")
        limit = size or 1000
        clauses, order = parse_filter(query.filter), parse_order_by(list(query.order_by))
        offset = decode_token(token, int)
        start = offset[0] if offset else 0
        with self._store.transaction() as tx:
            found = tx.search_runs(
                [validate_experiment_id(e) for e in query.experiment_ids], clauses, order, query.stage, start, limit
            )
        return Page(found, encode_token(start + limit) if len(found) == limit else "")
