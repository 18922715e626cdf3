"""The gRPC server's interceptors without a network: their per-method work is done once, not per request, and
doing it once changes no decision (a protected method still asks every caller for a token)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import grpc
import pytest

from modelyard.access import OPEN, AccessEdge, Authenticator, roles
from modelyard.auth import AuthSettings, Role
from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.runtime.auth_grpc import AccessInterceptor
from modelyard.runtime.grpc_server import UndecodableRequests

pytestmark = pytest.mark.unit

API = "inference.GRPCInferenceService"


class Details(NamedTuple):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...] = ()


async def behavior(request: Any, context: Any) -> pb.ModelInferResponse:
    return pb.ModelInferResponse(id=request.id)


def handler() -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        behavior, pb.ModelInferRequest.FromString, pb.ModelInferResponse.SerializeToString
    )


def returning(found: grpc.RpcMethodHandler) -> Callable[[Any], Awaitable[grpc.RpcMethodHandler]]:
    async def continuation(details: Any) -> grpc.RpcMethodHandler:
        return found

    return continuation


async def test_a_methods_guarded_handler_is_built_once_and_rebuilt_for_a_new_handler() -> None:
    interceptor = UndecodableRequests()
    original = handler()
    first = await interceptor.intercept_service(returning(original), Details(f"/{API}/ModelInfer"))
    again = await interceptor.intercept_service(returning(original), Details(f"/{API}/ModelInfer"))
    assert first is again
    assert first is not original
    assert type(first.request_deserializer(b"\xff")).__name__ == "_Undecodable"
    assert first.request_deserializer(pb.ModelInferRequest(id="r").SerializeToString()).id == "r"
    replaced = handler()
    other = await interceptor.intercept_service(returning(replaced), Details(f"/{API}/ModelInfer"))
    assert other is not first
    assert other.unary_unary is not first.unary_unary


async def test_open_methods_skip_the_edge_and_protected_ones_ask_every_call() -> None:
    settings = AuthSettings(allow_anonymous=False)
    edge = AccessEdge(Authenticator(settings), {"ModelInfer": OPEN, "RepositoryIndex": roles(Role.SERVICE)})
    interceptor = AccessInterceptor(edge, [API])
    original = handler()
    for _ in range(2):
        assert await interceptor.intercept_service(returning(original), Details(f"/{API}/ModelInfer")) is original
        refused = await interceptor.intercept_service(returning(original), Details(f"/{API}/RepositoryIndex"))
        assert refused is not original  # no token: answered UNAUTHENTICATED without running the method
        unlisted = await interceptor.intercept_service(returning(original), Details(f"/{API}/ModelMetadata"))
        assert unlisted is not original  # no rule: refused (fail closed), cached or not
    assert edge.is_open("ModelInfer")
    assert not edge.is_open("RepositoryIndex")
    assert not edge.is_open("ModelMetadata")
    assert not edge.is_open(None)
