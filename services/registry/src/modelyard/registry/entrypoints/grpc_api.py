"""The gRPC transport: authenticate, convert, delegate to the handlers in a worker thread, map errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TypeAlias, TypeVar

import grpc

from modelyard.auth import Principal
from modelyard.contracts.registry.v1 import registry_service_pb2 as pb
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as pb_grpc
from modelyard.inputs import time_of
from modelyard.registry import convert
from modelyard.registry.domain.errors import InvalidArgument
from modelyard.registry.entrypoints.errors import ERRORS
from modelyard.registry.handlers import NewVersion, RegistryHandlers, VersionQuery
from modelyard.runtime import GrpcApi
from modelyard.runtime.auth_grpc import current_principal

T = TypeVar("T")
Context: TypeAlias = grpc.aio.ServicerContext  # grpc ships no type hints: this is Any to mypy
SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["RegistryService"].full_name


class RegistryServicer(pb_grpc.RegistryServiceServicer):
    def __init__(self, handlers: RegistryHandlers) -> None:
        self._handlers = handlers

    async def _call(self, context: Context, use_case: Callable[[Principal], T]) -> T:
        """Run a blocking use case for the caller the edge admitted, in a worker thread; errors become statuses."""
        try:
            return await asyncio.to_thread(use_case, current_principal())
        except ERRORS.known as exc:
            await ERRORS.abort(context, exc)

    async def CreateRegisteredModel(
        self, request: pb.CreateRegisteredModelRequest, context: Context
    ) -> pb.CreateRegisteredModelResponse:
        model = await self._call(
            context,
            lambda p: self._handlers.create_model(
                p, request.name, request.description, request.owner, dict(request.tags)
            ),
        )
        return pb.CreateRegisteredModelResponse(registered_model=convert.registered_model(model))

    async def GetRegisteredModel(
        self, request: pb.GetRegisteredModelRequest, context: Context
    ) -> pb.GetRegisteredModelResponse:
        model = await self._call(context, lambda p: self._handlers.get_model(p, request.name))
        return pb.GetRegisteredModelResponse(registered_model=convert.registered_model(model))

    async def ListRegisteredModels(
        self, request: pb.ListRegisteredModelsRequest, context: Context
    ) -> pb.ListRegisteredModelsResponse:
        page = await self._call(
            context,
            lambda p: self._handlers.list_models(
                p, request.name_contains, dict(request.tags), request.page_size, request.page_token
            ),
        )
        return pb.ListRegisteredModelsResponse(
            registered_models=[convert.registered_model(m) for m in page.items], next_page_token=page.next_page_token
        )

    async def UploadArtifact(
        self, request_iterator: AsyncIterable[pb.UploadArtifactRequest], context: Context
    ) -> pb.UploadArtifactResponse:
        try:
            principal = current_principal()
            requests = aiter(request_iterator)
            first = await anext(requests, None)
            if first is None or first.WhichOneof("content") != "header":
                raise InvalidArgument("the first UploadArtifact message must be the header")
            header = first.header
            artifact = await self._handlers.upload_artifact(
                principal, header.media_type, header.digest, header.size_bytes, _chunks(requests)
            )
        except ERRORS.known as exc:
            await ERRORS.abort(context, exc)
        return pb.UploadArtifactResponse(artifact=convert.artifact(artifact))

    async def DownloadArtifact(
        self, request: pb.DownloadArtifactRequest, context: Context
    ) -> AsyncIterator[pb.DownloadArtifactResponse]:
        artifact, chunks = await self._call(context, lambda p: self._handlers.open_artifact(p, request.digest))
        header: pb.Artifact | None = convert.artifact(artifact)
        try:
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                yield pb.DownloadArtifactResponse(artifact=header, chunk=chunk)
                header = None
        except ERRORS.known as exc:
            await ERRORS.abort(context, exc)
        if header is not None:  # an empty artifact still gets its record
            yield pb.DownloadArtifactResponse(artifact=header)

    async def CreateModelVersion(
        self, request: pb.CreateModelVersionRequest, context: Context
    ) -> pb.CreateModelVersionResponse:
        new = NewVersion(
            model_name=request.model_name,
            artifact_digest=request.artifact_digest,
            reference_dataset_digest=request.reference_dataset_digest,
            feature_names={name: tuple(f.names) for name, f in request.feature_names.items()},
            label_column=request.label_column,
            lineage=convert.lineage_from_proto(request.lineage),
            tags=dict(request.tags),
        )
        version = await self._call(context, lambda p: self._handlers.create_version(p, new))
        return pb.CreateModelVersionResponse(model_version=convert.model_version(version))

    async def GetModelVersion(self, request: pb.GetModelVersionRequest, context: Context) -> pb.GetModelVersionResponse:
        version = await self._call(
            context, lambda p: self._handlers.get_version(p, request.model_name, request.version)
        )
        return pb.GetModelVersionResponse(model_version=convert.model_version(version))

    async def ListModelVersions(
        self, request: pb.ListModelVersionsRequest, context: Context
    ) -> pb.ListModelVersionsResponse:
        def use_case(p: Principal) -> pb.ListModelVersionsResponse:
            query = VersionQuery(
                model_name=request.model_name,
                statuses=tuple(convert.status_from_proto(s) for s in request.statuses),
                digest=request.digest,
                tags=dict(request.tags),
            )
            page = self._handlers.list_versions(p, query, request.page_size, request.page_token)
            return pb.ListModelVersionsResponse(
                model_versions=[convert.model_version(v) for v in page.items], next_page_token=page.next_page_token
            )

        return await self._call(context, use_case)

    async def ArchiveModelVersion(
        self, request: pb.ArchiveModelVersionRequest, context: Context
    ) -> pb.ArchiveModelVersionResponse:
        version = await self._call(
            context, lambda p: self._handlers.archive_version(p, request.model_name, request.version)
        )
        return pb.ArchiveModelVersionResponse(model_version=convert.model_version(version))

    async def UpdateTags(self, request: pb.UpdateTagsRequest, context: Context) -> pb.UpdateTagsResponse:
        tags = await self._call(
            context,
            lambda p: self._handlers.update_tags(
                p, request.model_name, request.version, dict(request.set), list(request.remove)
            ),
        )
        return pb.UpdateTagsResponse(tags=tags)

    async def SetAlias(self, request: pb.SetAliasRequest, context: Context) -> pb.SetAliasResponse:
        move = await self._call(
            context,
            lambda p: self._handlers.set_alias(p, request.model_name, request.alias, request.version, request.reason),
        )
        return pb.SetAliasResponse(move=convert.alias_move(move))

    async def DeleteAlias(self, request: pb.DeleteAliasRequest, context: Context) -> pb.DeleteAliasResponse:
        move = await self._call(
            context, lambda p: self._handlers.delete_alias(p, request.model_name, request.alias, request.reason)
        )
        return pb.DeleteAliasResponse(move=convert.alias_move(move))

    async def ResolveAlias(self, request: pb.ResolveAliasRequest, context: Context) -> pb.ResolveAliasResponse:
        version = await self._call(
            context,
            lambda p: self._handlers.resolve_alias(p, request.model_name, request.alias, time_of(request, "as_of")),
        )
        return pb.ResolveAliasResponse(
            version=convert.version_ref(version), model_version=convert.model_version(version)
        )

    async def ListAliasHistory(
        self, request: pb.ListAliasHistoryRequest, context: Context
    ) -> pb.ListAliasHistoryResponse:
        page = await self._call(
            context,
            lambda p: self._handlers.alias_history(
                p, request.model_name, request.alias, request.page_size, request.page_token
            ),
        )
        return pb.ListAliasHistoryResponse(
            moves=[convert.alias_move(m) for m in page.items], next_page_token=page.next_page_token
        )

    async def CollectGarbage(self, request: pb.CollectGarbageRequest, context: Context) -> pb.CollectGarbageResponse:
        report = await self._call(context, lambda p: self._handlers.collect_garbage(p, delete=request.delete))
        return convert.garbage_report(report)


async def _chunks(requests: AsyncIterator[pb.UploadArtifactRequest]) -> AsyncIterator[bytes]:
    async for request in requests:
        if request.WhichOneof("content") != "chunk":
            raise InvalidArgument("only the first UploadArtifact message may be a header")
        yield request.chunk


def registry_grpc_api(handlers: RegistryHandlers) -> GrpcApi:
    servicer = RegistryServicer(handlers)
    add: Callable[[RegistryServicer, grpc.aio.Server], None] = pb_grpc.add_RegistryServiceServicer_to_server
    return GrpcApi(SERVICE_NAME, lambda server: add(servicer, server))
