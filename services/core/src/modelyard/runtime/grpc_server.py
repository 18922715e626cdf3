"""The gRPC side of a service: its APIs plus the standard health and reflection services, behind one interceptor
that answers a request which is not a valid message with INVALID_ARGUMENT (grpc would say UNKNOWN, as for a
crashed handler)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from modelyard.access import AccessEdge
from modelyard.runtime.auth_grpc import AccessInterceptor
from modelyard.runtime.ports import StartupError, check_port_free, format_address
from modelyard.tls import TlsError, TlsSettings

# grpc-python sets SO_REUSEPORT by default: a second server on the same port would then bind silently and steal
# half the connections instead of failing. Only the worker processes of one service share their port on purpose.
_SERVER_OPTIONS = [("grpc.so_reuseport", 0)]
_SHARED_PORT_OPTIONS = [("grpc.so_reuseport", 1)]


class _Undecodable:
    """Stands for a request message that could not be parsed, so that the RPC can answer INVALID_ARGUMENT."""

    def __init__(self, error: DecodeError) -> None:
        self.message = f"request is not a valid message: {error}"


def _tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as exc:
            return _Undecodable(exc)

    return parse


async def _checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        yield request


def _guard_unary(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    async def unary_request(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        return await behavior(request, context)

    async def unary_request_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        async for response in behavior(request, context):
            yield response

    return unary_request_stream if inspect.isasyncgenfunction(behavior) else unary_request


def _guard_stream(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    async def stream_request(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        return await behavior(_checked(requests, context), context)

    async def stream_request_stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        async for response in behavior(_checked(requests, context), context):
            yield response

    return stream_request_stream if inspect.isasyncgenfunction(behavior) else stream_request


class UndecodableRequests(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Parses every request message tolerantly: one that is not a valid message is answered INVALID_ARGUMENT."""

    def __init__(self) -> None:
        # A method's handler is the same object on every call: it is wrapped once, not per request (kept per
        # method path, so the cache is as small as the API, and rewrapped should a method's handler change).
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        cached = self._guarded.get(handler_call_details.method)
        if cached is None or cached[0] is not handler:
            cached = self._guarded[handler_call_details.method] = (handler, _guard(handler))
        return cached[1]


def _guard(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """`handler` with a tolerant deserializer and a behavior that answers an undecodable request."""
    deserializer = _tolerant(handler.request_deserializer)
    if handler.unary_unary is not None:
        return handler._replace(request_deserializer=deserializer, unary_unary=_guard_unary(handler.unary_unary))
    if handler.unary_stream is not None:
        return handler._replace(request_deserializer=deserializer, unary_stream=_guard_unary(handler.unary_stream))
    if handler.stream_unary is not None:
        return handler._replace(request_deserializer=deserializer, stream_unary=_guard_stream(handler.stream_unary))
    return handler._replace(request_deserializer=deserializer, stream_stream=_guard_stream(handler.stream_stream))


@dataclass(frozen=True)
class GrpcApi:
    """One gRPC service to serve: its full proto name (for health and reflection) and how to add it."""

    name: str  # e.g. "modelyard.registry.v1.RegistryService"
    add_to_server: Callable[[grpc.aio.Server], None]

    @property
    def methods(self) -> list[str]:
        """The API's method names, from its generated descriptor."""
        service = descriptor_pool.Default().FindServiceByName(self.name)  # type: ignore[no-untyped-call]
        return [method.name for method in service.methods]


class GrpcEndpoint:
    """A grpc.aio server whose health reports NOT_SERVING until `set_serving(True)`; every RPC passes `edge`.
    TLS (and mutual TLS) when `tls` has a certificate."""

    def __init__(
        self,
        host: str,
        port: int,
        apis: Iterable[GrpcApi],
        health_names: Iterable[str],
        edge: AccessEdge,
        tls: TlsSettings | None = None,
        *,
        shared_port: bool = False,
    ) -> None:
        self.host = host
        self.shared_port = shared_port
        self.port = port
        self.tls = tls or TlsSettings()
        self.apis = list(apis)
        self.edge = edge
        # "" is the whole server; each API is also checkable by its own name (grpc_health_probe -service=...).
        self.health_names = ["", *dict.fromkeys([*health_names, *(api.name for api in self.apis)])]
        self._health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        if not self.shared_port:  # the supervisor checked a shared port before it started the workers
            check_port_free("gRPC", self.host, self.port)
        try:
            credentials = self.tls.grpc_server_credentials()
        except TlsError as exc:
            raise StartupError(f"gRPC server: {exc}") from None
        # Created here, not in __init__: a grpc.aio server belongs to the loop that is running when it is made.
        interceptor = AccessInterceptor(self.edge, [api.name for api in self.apis])
        # The caller is checked first, from metadata alone; only then is the request decoded.
        self._server = grpc.aio.server(
            interceptors=[interceptor, UndecodableRequests()],
            options=_SHARED_PORT_OPTIONS if self.shared_port else _SERVER_OPTIONS,
        )
        for api in self.apis:
            api.add_to_server(self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        await self.set_serving(False)  # the servicer starts with "" SERVING; nothing is ready yet
        reflection.enable_server_reflection(
            [api.name for api in self.apis] + [health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        try:
            address = format_address(self.host, self.port)
            if credentials is None:
                self.port = self._server.add_insecure_port(address)
            else:
                self.port = self._server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise StartupError(f"cannot bind gRPC port {self.port} on {self.host}: {exc}") from None
        await self._server.start()

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in self.health_names:
            await self._health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        """NOT_SERVING for good, refuse new RPCs, give in-flight ones `grace_s`, then cancel them."""
        await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace_s)
