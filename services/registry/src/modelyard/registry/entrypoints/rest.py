"""The REST transport (FastAPI): the same handlers as gRPC, and responses in the JSON form of the same protobuf
messages (field names as in the .proto), so that both APIs describe a model version identically.

No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations at run time, and some
name aliases local to `registry_router`.
"""

from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from pydantic import BaseModel, Field

from modelyard.auth import Principal, Unauthenticated
from modelyard.registry import convert
from modelyard.registry.domain.errors import InvalidArgument
from modelyard.registry.domain.model import Lineage, VersionStatus
from modelyard.registry.entrypoints.errors import ERRORS
from modelyard.registry.handlers import NewVersion, RegistryHandlers, VersionQuery
from modelyard.runtime.auth_http import CHALLENGE, current_principal

Json = dict[str, Any]


class ErrorMappingRoute(APIRoute):
    """Maps the registry's errors to HTTP statuses in one place (routers cannot carry exception handlers)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def mapped(request: Request) -> Response:
            try:
                return await handler(request)
            except ERRORS.known as exc:
                headers = CHALLENGE if isinstance(exc, Unauthenticated) else None
                return JSONResponse(ERRORS.body(exc), status_code=ERRORS.http(exc), headers=headers)

        return mapped


class CreateModelBody(BaseModel):
    name: str
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class LineageBody(BaseModel):
    training_datasets: list[str] = Field(default_factory=list)
    evaluation_datasets: list[str] = Field(default_factory=list)
    code_revision: str = ""
    parameters: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    environment: dict[str, str] = Field(default_factory=dict)


class CreateVersionBody(BaseModel):
    artifact_digest: str
    reference_dataset_digest: str = ""
    feature_names: dict[str, list[str]] = Field(default_factory=dict)
    label_column: str = ""
    lineage: LineageBody = Field(default_factory=LineageBody)
    tags: dict[str, str] = Field(default_factory=dict)


class TagsBody(BaseModel):
    set: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


class SetAliasBody(BaseModel):
    version: int
    reason: str = ""


def _json(message: Message) -> Json:
    return MessageToDict(message, preserving_proto_field_name=True)


def _tags(pairs: list[str]) -> Mapping[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidArgument(f"tag filter {pair!r} must be key=value")
        tags[key] = value
    return tags


def registry_router(handlers: RegistryHandlers) -> APIRouter:
    """Each route is named after the gRPC method it stands for: its operation in the access table."""
    router = APIRouter(prefix="/v1", tags=["registry"], route_class=ErrorMappingRoute)
    Caller = Annotated[Principal, Depends(current_principal)]
    TagFilter = Annotated[list[str] | None, Query(description="key=value; repeat to require several")]
    StatusFilter = Annotated[list[VersionStatus] | None, Query()]

    @router.post(
        "/models",
        name="CreateRegisteredModel",
        status_code=status.HTTP_201_CREATED,
        summary="Create a registered model",
    )
    def create_model(body: CreateModelBody, caller: Caller) -> Json:
        model = handlers.create_model(caller, body.name, body.description, body.owner, body.tags)
        return _json(convert.registered_model(model))

    @router.get("/models", name="ListRegisteredModels", summary="List or search registered models")
    def list_models(
        caller: Caller, name_contains: str = "", tag: TagFilter = None, page_size: int = 0, page_token: str = ""
    ) -> Json:
        page = handlers.list_models(caller, name_contains, _tags(tag or []), page_size, page_token)
        return {
            "registered_models": [_json(convert.registered_model(m)) for m in page.items],
            "next_page_token": page.next_page_token,
        }

    @router.get("/models/{name}", name="GetRegisteredModel", summary="Get a registered model")
    def get_model(name: str, caller: Caller) -> Json:
        return _json(convert.registered_model(handlers.get_model(caller, name)))

    @router.post(
        "/artifacts",
        name="UploadArtifact",
        status_code=status.HTTP_201_CREATED,
        summary="Upload an artifact: the request body is the bytes, streamed; Content-Type is its media type",
    )
    async def upload_artifact(request: Request, caller: Caller, digest: str) -> Json:
        declared = int(request.headers.get("content-length") or 0)
        media_type = request.headers.get("content-type", "")
        artifact = await handlers.upload_artifact(caller, media_type, digest, declared, request.stream())
        return _json(convert.artifact(artifact))

    @router.get(
        "/artifacts/{digest}",
        name="DownloadArtifact",
        summary="Download an artifact (verified against its digest while read)",
    )
    def download_artifact(digest: str, caller: Caller) -> StreamingResponse:
        artifact, chunks = handlers.open_artifact(caller, digest)
        headers = {"content-length": str(artifact.size_bytes), "x-modelyard-digest": artifact.digest}
        return StreamingResponse(chunks, media_type=artifact.media_type.value, headers=headers)

    @router.post(
        "/models/{name}/versions",
        name="CreateModelVersion",
        status_code=status.HTTP_201_CREATED,
        summary="Register a model version",
    )
    def create_version(name: str, body: CreateVersionBody, caller: Caller) -> Json:
        new = NewVersion(
            model_name=name,
            artifact_digest=body.artifact_digest,
            reference_dataset_digest=body.reference_dataset_digest,
            feature_names={k: tuple(v) for k, v in body.feature_names.items()},
            label_column=body.label_column,
            lineage=Lineage(
                training_datasets=tuple(body.lineage.training_datasets),
                evaluation_datasets=tuple(body.lineage.evaluation_datasets),
                code_revision=body.lineage.code_revision,
                parameters=body.lineage.parameters,
                metrics=body.lineage.metrics,
                environment=body.lineage.environment,
            ),
            tags=body.tags,
        )
        return _json(convert.model_version(handlers.create_version(caller, new)))

    def _versions(caller: Principal, query: VersionQuery, page_size: int, page_token: str) -> Json:
        page = handlers.list_versions(caller, query, page_size, page_token)
        return {
            "model_versions": [_json(convert.model_version(v)) for v in page.items],
            "next_page_token": page.next_page_token,
        }

    @router.get("/models/{name}/versions", name="ListModelVersions", summary="List a model's versions, newest first")
    def list_versions(
        name: str,
        caller: Caller,
        status: StatusFilter = None,
        tag: TagFilter = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Json:
        query = VersionQuery(model_name=name, statuses=tuple(status or ()), tags=_tags(tag or []))
        return _versions(caller, query, page_size, page_token)

    @router.get(
        "/versions", name="ListModelVersions", summary="Search model versions across models by digest, status and tags"
    )
    def search_versions(
        caller: Caller,
        digest: str = "",
        status: StatusFilter = None,
        tag: TagFilter = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Json:
        query = VersionQuery(digest=digest, statuses=tuple(status or ()), tags=_tags(tag or []))
        return _versions(caller, query, page_size, page_token)

    @router.get("/models/{name}/versions/{version}", name="GetModelVersion", summary="Get a model version")
    def get_version(name: str, version: int, caller: Caller) -> Json:
        return _json(convert.model_version(handlers.get_version(caller, name, version)))

    @router.post(
        "/models/{name}/versions/{version}/archive", name="ArchiveModelVersion", summary="Archive a model version"
    )
    def archive_version(name: str, version: int, caller: Caller) -> Json:
        return _json(convert.model_version(handlers.archive_version(caller, name, version)))

    @router.patch("/models/{name}/tags", name="UpdateTags", summary="Set and remove a registered model's tags")
    def update_model_tags(name: str, body: TagsBody, caller: Caller) -> dict[str, str]:
        return handlers.update_tags(caller, name, 0, body.set, body.remove)

    @router.patch(
        "/models/{name}/versions/{version}/tags", name="UpdateTags", summary="Set and remove a model version's tags"
    )
    def update_version_tags(name: str, version: int, body: TagsBody, caller: Caller) -> dict[str, str]:
        if version < 1:
            raise InvalidArgument("versions start at 1")
        return handlers.update_tags(caller, name, version, body.set, body.remove)

    @router.put("/models/{name}/aliases/{alias}", name="SetAlias", summary="Point an alias at a version")
    def set_alias(name: str, alias: str, body: SetAliasBody, caller: Caller) -> Json:
        return _json(convert.alias_move(handlers.set_alias(caller, name, alias, body.version, body.reason)))

    @router.delete("/models/{name}/aliases/{alias}", name="DeleteAlias", summary="Delete an alias")
    def delete_alias(name: str, alias: str, caller: Caller, reason: str = "") -> Json:
        return _json(convert.alias_move(handlers.delete_alias(caller, name, alias, reason)))

    @router.get("/models/{name}/aliases/{alias}", name="ResolveAlias", summary="Resolve an alias, now or as of a time")
    def resolve_alias(name: str, alias: str, caller: Caller, as_of: datetime | None = None) -> Json:
        if as_of is not None and as_of.tzinfo is None:
            raise InvalidArgument("as_of needs a time zone, e.g. 2025-01-31T12:00:00Z")
        return _json(convert.model_version(handlers.resolve_alias(caller, name, alias, as_of)))

    @router.get(
        "/models/{name}/aliases/{alias}/history",
        name="ListAliasHistory",
        summary="Every move of an alias, newest first",
    )
    def alias_history(name: str, alias: str, caller: Caller, page_size: int = 0, page_token: str = "") -> Json:
        page = handlers.alias_history(caller, name, alias, page_size, page_token)
        return {"moves": [_json(convert.alias_move(m)) for m in page.items], "next_page_token": page.next_page_token}

    @router.post(
        "/garbage-collection",
        name="CollectGarbage",
        summary="List (dry run, the default) or delete stored blobs no version names",
    )
    def collect_garbage(caller: Caller, delete: bool = False) -> Json:
        return _json(convert.garbage_report(handlers.collect_garbage(caller, delete=delete)))

    return router
