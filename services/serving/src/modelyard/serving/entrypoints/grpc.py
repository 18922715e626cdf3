"""`inference.GRPCInferenceService`: converts and delegates to the data plane and the lifecycle handlers."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from opentelemetry import trace

from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.contracts.inference import grpc_service_pb2_grpc as pb_grpc
from modelyard.serving.dataplane import DataPlane
from modelyard.serving.domain.errors import ServingError
from modelyard.serving.entrypoints.errors import ERRORS
from modelyard.serving.handlers import Lifecycle

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
SERVER_NAME = "modelyard"
EXTENSIONS = ("model_repository",)


def traceparent(span: trace.Span) -> str:
    """W3C traceparent of a recording span, for the prediction record; "" when tracing is off."""
    if not span.is_recording():
        return ""
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(
        self,
        dataplane: DataPlane,
        lifecycle: Lifecycle,
        version: str,
        ready: Callable[[], bool],
        *,
        tracer: trace.Tracer | None = None,
    ) -> None:
        """With a `tracer`, every inference runs in a span. Pass one only when spans are exported: an unexported
        span costs about as much as running a small model."""
        self.dataplane = dataplane
        self.tracer = tracer
        self.lifecycle = lifecycle
        self._metadata = pb.ServerMetadataResponse(name=SERVER_NAME, version=version, extensions=EXTENSIONS)
        self._ready = ready

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._ready())

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self.dataplane.is_ready(request.name, request.version))

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return self._metadata

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        try:
            return self.dataplane.metadata(request.name, request.version)
        except ServingError as exc:
            await ERRORS.abort(context, exc)

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        if self.tracer is None:
            try:
                return await self.dataplane.infer(request)
            except ServingError as exc:
                await ERRORS.abort(context, exc)
        with self.tracer.start_as_current_span("ModelInfer", record_exception=False) as span:
            recording = span.is_recording()
            if recording:
                span.set_attribute("inference.request_id", request.id)
                span.set_attribute("inference.model", request.model_name)
            try:
                return await self.dataplane.infer(request, traceparent(span) if recording else "")
            except ServingError as exc:
                if recording:
                    span.set_status(trace.Status(trace.StatusCode.ERROR, exc.kind.name))
                await ERRORS.abort(context, exc)

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        rows = self.lifecycle.index(request.ready)
        return pb.RepositoryIndexResponse(
            models=[
                pb.RepositoryIndexResponse.ModelIndex(name=name, version=version, state=state, reason=reason)
                for name, version, state, reason in rows
            ]
        )

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        try:
            await self.lifecycle.load_model(request.model_name)
        except ServingError as exc:
            await ERRORS.abort(context, exc)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        try:
            await self.lifecycle.unload_model(request.model_name)
        except ServingError as exc:
            await ERRORS.abort(context, exc)
        return pb.RepositoryModelUnloadResponse()


def add_inference_service(servicer: InferenceServicer, server: grpc.aio.Server) -> None:
    add: Callable[[InferenceServicer, grpc.aio.Server], None] = pb_grpc.add_GRPCInferenceServiceServicer_to_server
    add(servicer, server)
