"""gRPC side of the auth edge: an interceptor that enforces a service's access table before any servicer runs.

The principal it admitted reaches the servicer through a context variable (grpc.aio runs the interceptors and the
handler in one `contextvars.Context`, as its documentation promises); `current_principal()` reads it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import Any

import grpc
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from modelyard.access import AccessEdge
from modelyard.auth import AuthError, Principal
from modelyard.runtime.errors import SHARED

# Services every server carries, open to all: probes and tools must work without a token.
OPEN_SERVICES = frozenset({health.SERVICE_NAME, reflection.SERVICE_NAME, "grpc.reflection.v1.ServerReflection"})

_PRINCIPAL: ContextVar[Principal] = ContextVar("modelyard_principal")


def current_principal() -> Principal:
    """The caller the edge admitted for this RPC (only for operations that are not open)."""
    return _PRINCIPAL.get()


class AccessInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Looks up `/<api>/<Method>` in the table (open services pass), authenticates and authorizes the caller."""

    def __init__(self, edge: AccessEdge, api_names: Iterable[str]) -> None:
        self._edge = edge
        self._apis = frozenset(api_names)
        # Method paths that need no token, found on their first call: later calls skip the metadata and the edge.
        self._open: set[str] = set()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None  # no such method: grpc answers UNIMPLEMENTED
        if details.method in self._open:
            return handler
        service, _, method = details.method.lstrip("/").rpartition("/")
        operation = method if service in self._apis else None
        if service in OPEN_SERVICES or self._edge.is_open(operation):
            self._open.add(details.method)
            return handler
        metadata = {key.lower(): value for key, value in (details.invocation_metadata or ())}
        authorization = metadata.get("authorization")
        try:
            principal = await self._edge.admit(operation, authorization if isinstance(authorization, str) else None)
        except AuthError as exc:
            return _refusal(handler, SHARED.grpc(exc), str(exc))
        if principal is not None:
            _PRINCIPAL.set(principal)
        return handler


def _refusal(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as `handler` that answers `code` without running it."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    kinds = {
        "unary_unary": grpc.unary_unary_rpc_method_handler,
        "unary_stream": grpc.unary_stream_rpc_method_handler,
        "stream_unary": grpc.stream_unary_rpc_method_handler,
        "stream_stream": grpc.stream_stream_rpc_method_handler,
    }
    kind = next(name for name in kinds if getattr(handler, name) is not None)
    return kinds[kind](refuse, handler.request_deserializer, handler.response_serializer)
