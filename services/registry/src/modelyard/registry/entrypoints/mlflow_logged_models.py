"""MLflow 3's logged model REST API (`/api/2.0/mlflow/logged-models/...`, what `mlflow.<flavor>.log_model` and
`register_model` call) over the registry's use cases: the JSON MLflow's client sends and reads, converted.

No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from modelyard.auth import Principal
from modelyard.registry.domain.errors import InvalidArgument
from modelyard.registry.domain.logged_models import LoggedModel
from modelyard.registry.entrypoints.mlflow_common import (
    Json,
    JsonBody,
    file_infos,
    key_values,
    mlflow_router,
    number,
    pairs,
    query,
    strings,
    text,
)
from modelyard.registry.entrypoints.mlflow_tracking import metric_json
from modelyard.registry.handlers import NewLoggedModel, RegistryHandlers, logged_model_order
from modelyard.runtime.auth_http import current_principal


def logged_model_json(model: LoggedModel) -> Json:
    info: Json = {
        "model_id": model.model_id,
        "experiment_id": model.experiment_id,
        "name": model.name,
        "creation_timestamp_ms": model.created_ms,
        "last_updated_timestamp_ms": model.updated_ms,
        "artifact_uri": model.artifact_uri,
        "status": model.status.value,
        "model_type": model.model_type,
        "status_message": model.status_message,
        "tags": pairs(model.tags),
    }
    if model.source_run_id:
        info["source_run_id"] = model.source_run_id
    data = {"params": pairs(model.params), "metrics": [metric_json(m) for m in model.metrics]}
    return {"info": info, "data": data}


def _order(body: Json) -> list[tuple[str, bool]]:
    items = body.get("order_by") or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidArgument("parameter 'order_by' must be a list of {field_name, ascending} objects")
    if any(i.get("dataset_name") for i in items):
        raise InvalidArgument("ordering by a dataset's metrics is not supported")
    return [(text(i, "field_name", required=True), i.get("ascending", True) is not False) for i in items]


def mlflow_logged_models_router(handlers: RegistryHandlers, prefix: str) -> APIRouter:
    router = mlflow_router(f"{prefix}/logged-models")
    Caller = Annotated[Principal, Depends(current_principal)]

    @router.post("", name="mlflow:createLoggedModel")
    def create(body: JsonBody, caller: Caller) -> Json:
        new = NewLoggedModel(
            experiment_id=text(body, "experiment_id", required=True),
            name=text(body, "name"),
            source_run_id=text(body, "source_run_id"),
            model_type=text(body, "model_type"),
            params=key_values(body, "params"),
            tags=key_values(body, "tags"),
        )
        return {"model": logged_model_json(handlers.create_logged_model(caller, new))}

    @router.post("/search", name="mlflow:searchLoggedModels")
    def search(body: JsonBody, caller: Caller) -> Json:
        if body.get("datasets"):
            raise InvalidArgument("filtering logged models by dataset is not supported")
        page = handlers.search_logged_models(
            caller,
            strings(body, "experiment_ids"),
            text(body, "filter"),
            logged_model_order(_order(body)),
            number(body, "max_results", default=0) or 0,
            text(body, "page_token"),
        )
        return {"models": [logged_model_json(m) for m in page.items], "next_page_token": page.next_page_token}

    @router.get("/{model_id}", name="mlflow:getLoggedModel")
    def get(model_id: str, request: Request, caller: Caller) -> Json:
        allow_deleted = text(query(request), "allow_deleted").lower() == "true"
        return {"model": logged_model_json(handlers.get_logged_model(caller, model_id, allow_deleted))}

    @router.patch("/{model_id}", name="mlflow:finalizeLoggedModel")
    def finalize(model_id: str, body: JsonBody, caller: Caller) -> Json:
        model = handlers.finalize_logged_model(caller, model_id, text(body, "status", required=True))
        return {"model": logged_model_json(model)}

    @router.delete("/{model_id}", name="mlflow:deleteLoggedModel")
    def delete(model_id: str, caller: Caller) -> Json:
        handlers.delete_logged_model(caller, model_id)
        return {}

    @router.patch("/{model_id}/tags", name="mlflow:setLoggedModelTags")
    def set_tags(model_id: str, body: JsonBody, caller: Caller) -> Json:
        handlers.set_logged_model_tags(caller, model_id, key_values(body, "tags"))
        return {}

    @router.delete("/{model_id}/tags/{tag_key:path}", name="mlflow:deleteLoggedModelTag")
    def delete_tag(model_id: str, tag_key: str, caller: Caller) -> Json:
        handlers.delete_logged_model_tag(caller, model_id, tag_key)
        return {}

    @router.post("/{model_id}/params", name="mlflow:logLoggedModelParams")
    def log_params(model_id: str, body: JsonBody, caller: Caller) -> Json:
        handlers.log_logged_model_params(caller, model_id, key_values(body, "params"))
        return {}

    @router.get("/{model_id}/artifacts/directories", name="mlflow:listLoggedModelArtifacts")
    def list_files(model_id: str, request: Request, caller: Caller) -> Json:
        path = text(query(request), "artifact_directory_path").strip("/")
        model = handlers.get_logged_model(caller, model_id)
        files = file_infos(handlers.list_files(caller, model.model_id, path), path)
        return {"root_uri": model.artifact_uri, "files": files, "next_page_token": ""}

    return router
