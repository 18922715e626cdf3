"""The registry's use cases, MLflow 3's logged models: what `mlflow.<flavor>.log_model` creates before uploading the
flavor's files to it, its parameters, tags and status, the runs that output it, and search."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modelyard.auth import Principal
from modelyard.registry.domain.errors import InvalidArgument, NotFound
from modelyard.registry.domain.logged_models import LoggedModel, LoggedModelStatus, validate_model_id
from modelyard.registry.domain.pagination import Page, decode_token, encode_token
from modelyard.registry.domain.ports import RegistryTransaction
from modelyard.registry.domain.run_filter import LOGGED_MODELS, OrderKey, parse_filter, parse_order_by
from modelyard.registry.domain.tracking import (
    MAX_BATCH_PARAMS,
    MAX_PARAM_VALUE,
    LifecycleStage,
    ModelOutput,
    parse_status,
    validate_experiment_id,
    validate_key,
    validate_tags,
    validate_value,
)
from modelyard.registry.handlers.base import PUBLISH, READ
from modelyard.registry.handlers.tracking import TrackingUseCases, existing_experiment, existing_run

MAX_LOGGED_MODEL_RESULTS = 100  # MLflow's page of logged models


@dataclass(frozen=True)
class NewLoggedModel:
    experiment_id: str
    name: str = ""
    source_run_id: str = ""
    model_type: str = ""
    params: Mapping[str, str] | None = None
    tags: Mapping[str, str] | None = None


def existing_logged_model(tx: RegistryTransaction, model_id: str, *, allow_deleted: bool = False) -> LoggedModel:
    model = tx.get_logged_model(validate_model_id(model_id))
    if model is None or (model.lifecycle_stage is LifecycleStage.DELETED and not allow_deleted):
        raise NotFound(f"logged model {model_id!r} not found")
    return model


def _params(params: Mapping[str, str]) -> dict[str, str]:
    return {validate_key(k, "param"): validate_value(v, MAX_PARAM_VALUE, "param") for k, v in params.items()}


class LoggedModelUseCases(TrackingUseCases):
    def create_logged_model(self, principal: Principal, new: NewLoggedModel) -> LoggedModel:
        principal.require("log models", PUBLISH)
        model_id = f"m-{uuid.uuid4().hex}"
        now = self._now_ms()
        model = LoggedModel(
            model_id=model_id,
            experiment_id=new.experiment_id,
            name=validate_value(new.name or f"model-{model_id[2:10]}", 500, "model name"),
            source_run_id=new.source_run_id,
            status=LoggedModelStatus.PENDING,
            creator=principal.name,
            created_ms=now,
            updated_ms=now,
            model_type=validate_value(new.model_type, 500, "model type"),
            params=_params(new.params or {}),
            tags=validate_tags(new.tags or {}),
        )
        with self._store.transaction(write=True) as tx:
            if existing_experiment(tx, new.experiment_id).lifecycle_stage is not LifecycleStage.ACTIVE:
                raise InvalidArgument(f"experiment {new.experiment_id} is deleted: models cannot be logged to it")
            if new.source_run_id and existing_run(tx, new.source_run_id).experiment_id != new.experiment_id:
                raise InvalidArgument(f"run {new.source_run_id} is not in experiment {new.experiment_id}")
            tx.add_logged_model(model)
        return model

    def get_logged_model(self, principal: Principal, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        principal.require("read logged models", READ)
        with self._store.transaction() as tx:
            return existing_logged_model(tx, model_id, allow_deleted=allow_deleted)

    def finalize_logged_model(self, principal: Principal, model_id: str, status: str) -> LoggedModel:
        """The client says its upload is over: READY (or UPLOAD_FAILED). Only a READY model can be registered."""
        principal.require("log models", PUBLISH)
        final = parse_status(LoggedModelStatus, status, "logged model status")
        if final is LoggedModelStatus.PENDING:
            raise InvalidArgument("a logged model is finalized as LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED")
        with self._store.transaction(write=True) as tx:
            existing_logged_model(tx, model_id)
            tx.update_logged_model(model_id, status=final.value, updated_ms=self._now_ms())
            return existing_logged_model(tx, model_id)

    def delete_logged_model(self, principal: Principal, model_id: str) -> None:
        principal.require("delete logged models", PUBLISH)
        with self._store.transaction(write=True) as tx:
            existing_logged_model(tx, model_id)
            tx.update_logged_model(model_id, lifecycle_stage=LifecycleStage.DELETED.value, updated_ms=self._now_ms())

    def set_logged_model_tags(self, principal: Principal, model_id: str, tags: Mapping[str, str]) -> None:
        principal.require("tag logged models", PUBLISH)
        checked = validate_tags(tags)
        with self._store.transaction(write=True) as tx:
            existing_logged_model(tx, model_id)
            tx.set_logged_model_tags(model_id, checked)

    def delete_logged_model_tag(self, principal: Principal, model_id: str, key: str) -> None:
        principal.require("tag logged models", PUBLISH)
        with self._store.transaction(write=True) as tx:
            existing_logged_model(tx, model_id)
            if not tx.delete_logged_model_tag(model_id, key):
                raise NotFound(f"logged model {model_id} has no tag {key[:100]!r}")

    def log_logged_model_params(self, principal: Principal, model_id: str, params: Mapping[str, str]) -> None:
        principal.require("log models", PUBLISH)
        if len(params) > MAX_BATCH_PARAMS:
            raise InvalidArgument(f"a batch holds at most {MAX_BATCH_PARAMS} parameters")
        checked = _params(params)
        with self._store.transaction(write=True) as tx:
            existing_logged_model(tx, model_id)
            tx.set_logged_model_params(model_id, checked)

    def log_outputs(self, principal: Principal, run_id: str, outputs: Sequence[ModelOutput]) -> None:
        """Record that the run produced these logged models (MLflow's run outputs)."""
        principal.require("log to runs", PUBLISH)
        with self._store.transaction(write=True) as tx:
            existing_run(tx, run_id)
            for output in outputs:
                existing_logged_model(tx, output.model_id)
            tx.add_run_outputs(run_id, outputs)

    def search_logged_models(
        self,
        principal: Principal,
        experiment_ids: Sequence[str],
        filter_text: str = "",
        order: Sequence[OrderKey] = (),
        size: int = 0,
        token: str = "",
    ) -> Page[LoggedModel]:
        principal.require("search logged models", READ)
        if not experiment_ids:
            raise InvalidArgument("name at least one experiment to search")
        if size < 0 or size > MAX_LOGGED_MODEL_RESULTS:
            raise InvalidArgument(f"max_results must be between 1 and {MAX_LOGGED_MODEL_RESULTS}")
        limit = size or MAX_LOGGED_MODEL_RESULTS
        clauses = parse_filter(filter_text, LOGGED_MODELS)
        offset = decode_token(token, int)
        start = offset[0] if offset else 0
        ids = [validate_experiment_id(e) for e in experiment_ids]
        with self._store.transaction() as tx:
            found = tx.search_logged_models(ids, clauses, order, start, limit)
        return Page(found, encode_token(start + limit) if len(found) == limit else "")


def logged_model_order(fields: Sequence[tuple[str, bool]]) -> tuple[OrderKey, ...]:
    """MLflow's `order_by` of a logged model search ({field_name, ascending}) as order keys: an attribute name, or
    `metrics.<key>`, `params.<key>`, `tags.<key>`."""
    terms = [
        f"{name if '.' in name else 'attributes.' + name} {'ASC' if ascending else 'DESC'}"
        for name, ascending in fields
    ]
    return parse_order_by(terms, LOGGED_MODELS)
