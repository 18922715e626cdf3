"""The gRPC side of a service: its APIs plus the standard health and reflection services."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from modelyard.access import AccessEdge
from modelyard.runtime.auth_grpc import AccessInterceptor
from modelyard.runtime.ports import StartupError, check_port_free, format_address

# grpc-python sets SO_REUSEPORT by default: a second server on the same port would then bind silently and steal
# half the connections instead of failing.
_SERVER_OPTIONS = [("grpc.so_reuseport", 0)]


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
    """A grpc.aio server whose health reports NOT_SERVING until `set_serving(True)`; every RPC passes `edge`."""

    def __init__(
        self, host: str, port: int, apis: Iterable[GrpcApi], health_names: Iterable[str], edge: AccessEdge
    ) -> None:
        self.host = host
        self.port = port
        self.apis = list(apis)
        self.edge = edge
        # "" is the whole server; each API is also checkable by its own name (grpc_health_probe -service=...).
        self.health_names = ["", *dict.fromkeys([*health_names, *(api.name for api in self.apis)])]
        self._health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        check_port_free("gRPC", self.host, self.port)
        # Created here, not in __init__: a grpc.aio server belongs to the loop that is running when it is made.
        interceptor = AccessInterceptor(self.edge, [api.name for api in self.apis])
        self._server = grpc.aio.server(interceptors=[interceptor], options=_SERVER_OPTIONS)
        for api in self.apis:
            api.add_to_server(self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        await self.set_serving(False)  # the servicer starts with "" SERVING; nothing is ready yet
        reflection.enable_server_reflection(
            [api.name for api in self.apis] + [health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        try:
            self.port = self._server.add_insecure_port(format_address(self.host, self.port))
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
