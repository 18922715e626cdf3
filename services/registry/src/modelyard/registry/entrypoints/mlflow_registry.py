"""MLflow's model registry REST API (`/api/2.0/mlflow/registered-models|model-versions/...`) and its artifact proxy
(`/api/2.0/mlflow-artifacts/artifacts/...`) over the registry's use cases. A version created here goes through
the same ingestion and checks as a native one; protected aliases are refused: governance moves them.

No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time.
"""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from modelyard.auth import PermissionDenied, Principal
from modelyard.registry.domain.errors import InvalidArgument
from modelyard.registry.domain.logged_models import logged_model_in, proxied_file
from modelyard.registry.domain.model import ModelVersion, RegisteredModel, VersionStatus
from modelyard.registry.entrypoints.mlflow_common import (
    ARTIFACTS,
    Json,
    JsonBody,
    file_infos,
    key_values,
    mlflow_router,
    name_filter,
    number,
    pairs,
    query,
    text,
)
from modelyard.registry.handlers import RegistryHandlers, VersionQuery
from modelyard.runtime.auth_http import current_principal

STATUSES = {
    VersionStatus.PENDING_REGISTRATION: "PENDING_REGISTRATION",
    VersionStatus.READY: "READY",
    VersionStatus.FAILED_REGISTRATION: "FAILED_REGISTRATION",
    VersionStatus.ARCHIVED: "READY",  # MLflow says archived with its stage, below
}


def _ms(version: ModelVersion | RegisteredModel) -> int:
    return int(version.created_at.timestamp() * 1000)


def model_json(model: RegisteredModel) -> Json:
    return {
        "name": model.name,
        "creation_timestamp": _ms(model),
        "last_updated_timestamp": _ms(model),
        "user_id": model.created_by,
        "description": model.description,
        "tags": pairs(model.tags),
        "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(model.aliases.items())],
    }


def version_json(version: ModelVersion) -> Json:
    return {
        "name": version.model_name,
        "version": str(version.version),
        "creation_timestamp": _ms(version),
        "last_updated_timestamp": _ms(version),
        "user_id": version.created_by,
        "current_stage": "Archived" if version.status is VersionStatus.ARCHIVED else "None",
        "description": "",
        "source": version.lineage.source or f"models:/{version.model_name}/{version.version}",
        "run_id": version.lineage.run_id,
        **({"model_id": model_id} if (model_id := _logged_model_of(version)) else {}),
        "status": STATUSES[version.status],
        "status_message": version.status_message,
        "tags": pairs(version.tags),
        "aliases": list(version.aliases),
    }


def _logged_model_of(version: ModelVersion) -> str:
    """The logged model a version was registered from ("" for none)."""
    return logged_model_in(version.lineage.source)


def _version_number(data: Json) -> int:
    number_ = number(data, "version", required=True)
    assert number_ is not None
    return number_


def mlflow_registry_router(handlers: RegistryHandlers, prefix: str) -> APIRouter:
    router = mlflow_router(prefix)
    Caller = Annotated[Principal, Depends(current_principal)]

    def unprotected(alias: str, name: str) -> str:
        if alias in handlers.policy.protected_aliases:
            raise PermissionDenied(
                f"alias {alias!r} is protected: governance moves it. Use `modelyard promote {name} --version <n> "
                f"--alias {alias}` to request the promotion, which runs the checks and collects approvals"
            )
        return alias

    @router.post("/registered-models/create", name="mlflow:createRegisteredModel")
    def create_model(body: JsonBody, caller: Caller) -> Json:
        model = handlers.create_model(
            caller, text(body, "name", required=True), text(body, "description"), tags=key_values(body, "tags")
        )
        return {"registered_model": model_json(model)}

    @router.get("/registered-models/get", name="mlflow:getRegisteredModel")
    def get_model(request: Request, caller: Caller) -> Json:
        return {"registered_model": model_json(handlers.get_model(caller, text(query(request), "name", required=True)))}

    def search_models(data: Json, caller: Principal) -> Json:
        page = handlers.list_models(
            caller,
            name_filter(text(data, "filter")),
            size=number(data, "max_results", default=0) or 0,
            token=text(data, "page_token"),
        )
        return {"registered_models": [model_json(m) for m in page.items], "next_page_token": page.next_page_token}

    @router.get("/registered-models/search", name="mlflow:searchRegisteredModels")
    def search_models_get(request: Request, caller: Caller) -> Json:
        return search_models(query(request), caller)

    @router.post("/registered-models/search", name="mlflow:searchRegisteredModels")
    def search_models_post(body: JsonBody, caller: Caller) -> Json:
        return search_models(body, caller)

    @router.post("/registered-models/set-tag", name="mlflow:setRegisteredModelTag")
    def set_model_tag(body: JsonBody, caller: Caller) -> Json:
        key = text(body, "key", required=True)
        handlers.update_tags(caller, text(body, "name", required=True), 0, {key: text(body, "value")}, [])
        return {}

    @router.post("/model-versions/create", name="mlflow:createModelVersion")
    def create_version(body: JsonBody, caller: Caller) -> Json:
        version = handlers.register_from_source(
            caller,
            text(body, "name", required=True),
            text(body, "source", required=True),
            text(body, "run_id"),
            key_values(body, "tags"),
            text(body, "model_id"),
        )
        return {"model_version": version_json(version)}

    @router.get("/model-versions/get", name="mlflow:getModelVersion")
    def get_version(request: Request, caller: Caller) -> Json:
        data = query(request)
        version = handlers.get_version(caller, text(data, "name", required=True), _version_number(data))
        return {"model_version": version_json(version)}

    @router.get("/model-versions/search", name="mlflow:searchModelVersions")
    def search_versions(request: Request, caller: Caller) -> Json:
        data = query(request)
        name = name_filter(text(data, "filter"))
        if "%" in text(data, "filter"):
            raise InvalidArgument("model versions are searched by exact name: name = '...'")
        page = handlers.list_versions(
            caller,
            VersionQuery(model_name=name),
            number(data, "max_results", default=0) or 0,
            text(data, "page_token"),
        )
        return {"model_versions": [version_json(v) for v in page.items], "next_page_token": page.next_page_token}

    @router.post("/model-versions/set-tag", name="mlflow:setModelVersionTag")
    def set_version_tag(body: JsonBody, caller: Caller) -> Json:
        name, version = text(body, "name", required=True), _version_number(body)
        handlers.update_tags(caller, name, version, {text(body, "key", required=True): text(body, "value")}, [])
        return {}

    @router.get("/model-versions/get-download-uri", name="mlflow:getModelVersionDownloadUri")
    def download_uri(request: Request, caller: Caller) -> Json:
        data = query(request)
        version = handlers.get_version(caller, text(data, "name", required=True), _version_number(data))
        if not version.lineage.source:
            raise InvalidArgument("this version was not registered from a run: download it with `modelyard models`")
        if model_id := _logged_model_of(version):
            return {"artifact_uri": handlers.get_logged_model(caller, model_id, allow_deleted=True).artifact_uri}
        return {"artifact_uri": version.lineage.source}

    @router.post("/registered-models/alias", name="mlflow:setRegisteredModelAlias")
    def set_alias(body: JsonBody, caller: Caller) -> Json:
        name = text(body, "name", required=True)
        alias = unprotected(text(body, "alias", required=True), name)
        handlers.set_alias(caller, name, alias, _version_number(body), "set through the MLflow API")
        return {}

    @router.delete("/registered-models/alias", name="mlflow:deleteRegisteredModelAlias")
    def delete_alias(body: JsonBody, caller: Caller) -> Json:
        name = text(body, "name", required=True)
        handlers.delete_alias(caller, name, unprotected(text(body, "alias", required=True), name))
        return {}

    @router.get("/registered-models/alias", name="mlflow:getModelVersionByAlias")
    def resolve_alias(request: Request, caller: Caller) -> Json:
        data = query(request)
        name, alias = text(data, "name", required=True), text(data, "alias", required=True)
        return {"model_version": version_json(handlers.resolve_alias(caller, name, alias, None))}

    return router


def mlflow_artifacts_router(handlers: RegistryHandlers) -> APIRouter:
    """MLflow's artifact proxy, for the files of runs (`<experiment_id>/<run_id>/artifacts/<path>`) and of logged
    models (`<experiment_id>/models/<model_id>/artifacts/<path>`)."""
    router = mlflow_router(f"{ARTIFACTS}/artifacts")
    Caller = Annotated[Principal, Depends(current_principal)]

    @router.put("/{artifact_path:path}", name="mlflow:uploadArtifact")
    async def upload(artifact_path: str, request: Request, caller: Caller) -> Json:
        owner, path = await asyncio.to_thread(proxied_file, artifact_path)
        if not path:
            raise InvalidArgument("name the file to upload under the artifacts")
        await handlers.upload_file(caller, owner, path, request.stream())
        return {}

    @router.get("/{artifact_path:path}", name="mlflow:downloadArtifact")
    def download(artifact_path: str, caller: Caller) -> StreamingResponse:
        owner, path = proxied_file(artifact_path)
        stored, chunks = handlers.open_file(caller, owner, path)
        headers = {"content-length": str(stored.size_bytes), "x-modelyard-digest": stored.digest}
        return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)

    @router.get("", name="mlflow:listArtifacts")
    def list_files(request: Request, caller: Caller) -> Json:
        owner, path = proxied_file(text(query(request), "path", required=True))
        return {"files": file_infos(handlers.list_files(caller, owner, path), path)}

    return router
