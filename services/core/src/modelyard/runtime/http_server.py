"""The HTTP side of a service: probes, Prometheus metrics and the service's REST routers, on uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from modelyard.access import AccessEdge
from modelyard.auth import AuthError
from modelyard.runtime.auth_http import edge_dependency, refusal
from modelyard.runtime.body_limit import BodyLimit
from modelyard.runtime.ports import StartupError, bind_listener
from modelyard.runtime.readiness import Readiness
from modelyard.tls import TlsSettings

log = logging.getLogger(__name__)


HEALTHZ, READYZ, METRICS = "healthz", "readyz", "metrics"  # route names: operations of the access table


def build_app(
    title: str,
    readiness: Readiness,
    routers: Iterable[APIRouter],
    edge: AccessEdge,
    max_body_bytes: int = 1 << 20,
    body_limits: Mapping[str, int] | None = None,
    metrics_dir: Path | None = None,
) -> FastAPI:
    """Probes, metrics and `routers`, every route behind `edge` (the app-wide dependency); `max_body_bytes` for
    every request body, except under the path prefixes of `body_limits` (413 beyond). With `metrics_dir` (a worker
    process; prometheus_client's multiprocess directory), /metrics adds up the metrics of all the workers."""
    app = FastAPI(title=title, dependencies=[Depends(edge_dependency(edge))])
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, limits=body_limits)
    app.add_exception_handler(AuthError, refusal)

    @app.get("/healthz", include_in_schema=False, name=HEALTHZ)
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", include_in_schema=False, name=READYZ)
    async def readyz() -> JSONResponse:
        report = readiness.report
        return JSONResponse(report.as_json(), status_code=200 if report.ready else 503)

    @app.get("/metrics", include_in_schema=False, name=METRICS)
    async def prometheus_metrics(request: Request) -> Response:
        # Negotiated: OpenMetrics when the scraper asks for it, else the classic text format every scraper reads.
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(metrics_registry()), headers={"content-type": content_type})

    def metrics_registry() -> CollectorRegistry:
        if metrics_dir is None:
            return REGISTRY
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
        return registry

    for router in routers:
        app.include_router(router)
    return app


def api_routes(app: FastAPI) -> list[RouteContext]:
    """Every API route of the app, those of included routers too (their `name` is their operation)."""
    return [context for context in iter_route_contexts(app.routes) if isinstance(context.original_route, APIRoute)]


class _EmbeddedUvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The runtime owns SIGTERM/SIGINT; uvicorn's handlers would replace ours and re-raise the signal later.
        yield


class HttpEndpoint:
    """uvicorn serving `app` on the caller's event loop from a socket bound up front (clear port errors); HTTPS
    (and mutual TLS) when `tls` has a certificate."""

    def __init__(
        self, app: FastAPI, host: str, port: int, tls: TlsSettings | None = None, *, shared_port: bool = False
    ) -> None:
        self.app = app
        self.shared_port = shared_port
        self.host = host
        self.port = port
        self.tls = tls or TlsSettings()
        self._server: _EmbeddedUvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        sock = bind_listener("HTTP", self.host, self.port, shared=self.shared_port)
        self.port = sock.getsockname()[1]
        # uvicorn narrates a whole process ("Started server process"); here it is one part of one, which the
        # runtime narrates itself.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="off", **self.tls.uvicorn_options()
        )
        if self.tls.serves_tls:
            try:
                config.load()  # loads the certificate and key now, so a bad file is a clear startup error
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise StartupError(f"HTTP server: cannot load its TLS files ({self.tls.cert_file}): {exc}") from None
        self._server = _EmbeddedUvicorn(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="http-server")
        while not self._server.started:  # uvicorn has no startup future; it flips this flag within a tick
            if self._task.done():
                await self._task  # surface the startup error
                raise RuntimeError("HTTP server stopped during startup")
            await asyncio.sleep(0.01)

    async def stop(self, grace_s: float) -> None:
        """Stop listening, give open requests `grace_s`, then drop them."""
        if self._server is None or self._task is None:
            return
        # uvicorn takes whole seconds, and 0 would mean "give up at once" rather than "nothing to wait for".
        self._server.config.timeout_graceful_shutdown = max(1, math.ceil(grace_s))
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_s + 1.0)
        except TimeoutError:
            log.warning("HTTP server did not stop within %.1fs; forcing", grace_s)
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
