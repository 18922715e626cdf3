"""`Service`: what a bootstrap builds, and the lifecycle every Modelyard service shares.

Start: telemetry, bind both ports (a clash fails before anything else starts), on-start hooks, gRPC and HTTP
servers, background tasks, then the readiness loop, which flips gRPC health and /readyz once every check passes.
Stop: NOT_SERVING, stop accepting, `shutdown_grace_s` for in-flight RPCs, requests and tasks, then the on-stop
hooks in reverse order, each bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

from fastapi import APIRouter

from modelyard.access import OPEN, AccessEdge, Authenticator, Rule, roles
from modelyard.auth import AuthSettings, Role
from modelyard.runtime import gauges
from modelyard.runtime.grpc_server import GrpcApi, GrpcEndpoint
from modelyard.runtime.http_server import HEALTHZ, METRICS, READYZ, HttpEndpoint, api_routes, build_app
from modelyard.runtime.readiness import Readiness, ReadinessCheck, kafka_check
from modelyard.runtime.workers import DEGRADED_WORKERS_CHECK, WORKERS_CHECK, WorkerSettings, WorkerTable
from modelyard.settings import ServiceSettings
from modelyard.telemetry import setup_telemetry, tag_logs

log = logging.getLogger(__name__)

BackgroundTask = Callable[[], Coroutine[Any, Any, None]]
Hook = Callable[[], Awaitable[None]]

HOOK_TIMEOUT_S = 5.0
READINESS_INTERVAL_S = 5.0
NOT_READY_INTERVAL_S = 1.0
WORKER_SILENT_AFTER_S = 15.0  # a worker whose status is older is taken for hung (an evaluation takes up to 5 s)


def runtime_rules(settings: AuthSettings) -> dict[str, Rule]:
    """The runtime's own HTTP routes: probes open, metrics open unless `protect_metrics`."""
    metrics = roles(Role.VIEWER, Role.SERVICE) if settings.protect_metrics else OPEN
    return {HEALTHZ: OPEN, READYZ: OPEN, METRICS: metrics}


class Service:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        access: Mapping[str, Rule],
        grpc_apis: Sequence[GrpcApi] = (),
        grpc_health_names: Sequence[str] = (),
        routers: Sequence[APIRouter] = (),
        background_tasks: Mapping[str, BackgroundTask] | None = None,
        readiness_checks: Mapping[str, ReadinessCheck] | None = None,
        degraded_checks: Mapping[str, ReadinessCheck] | None = None,
        on_start: Sequence[Hook] = (),
        on_stop: Sequence[Hook] = (),
        body_limits: Mapping[str, int] | None = None,
        worker: WorkerSettings | None = None,
    ) -> None:
        """`access` is the service's table: a rule for every method of `grpc_apis` and every route of `routers`
        (by name), else ValueError. `grpc_health_names` are health-checkable names beyond those of `grpc_apis`
        (whose names count too). With `settings.kafka_required`, readiness also waits for the broker ("kafka").
        `degraded_checks` watch non-critical dependencies: reported, but the service stays ready (see
        `modelyard.runtime.readiness`). `body_limits` raise `settings.max_body_bytes` for routes under a path prefix
        (uploads, inference). `worker`: this process is one of the service's worker processes (see
        `modelyard.runtime.supervisor`): it shares its ports with the others, and its readiness and metrics are
        those of all of them."""
        self.settings = settings
        self.name = settings.service_name
        checks = dict(readiness_checks or {})
        if settings.kafka_required:
            checks.setdefault("kafka", kafka_check(settings.kafka_bootstrap, security=settings.kafka_security))
        degraded = dict(degraded_checks or {})
        self.workers = WorkerTable(self.name, worker, WORKER_SILENT_AFTER_S) if worker else None
        if self.workers is not None:
            checks[WORKERS_CHECK] = self.workers.readiness_check()
            degraded[DEGRADED_WORKERS_CHECK] = self.workers.degradation_check()
        self.readiness = Readiness(self.name, checks, degraded_checks=degraded)
        self.edge = AccessEdge(Authenticator(settings.auth), {**runtime_rules(settings.auth), **access})
        shared = worker is not None
        self.grpc = GrpcEndpoint(
            settings.host, settings.grpc_port, grpc_apis, grpc_health_names, self.edge, settings.tls, shared_port=shared
        )
        app = build_app(
            f"modelyard {self.name}",
            self.readiness,
            routers,
            self.edge,
            settings.max_body_bytes,
            body_limits,
            metrics_dir=worker.metrics_dir if worker else None,
        )
        operations = [method for api in grpc_apis for method in api.methods]
        operations += [route.name for route in api_routes(app) if route.name is not None]
        if missing := self.edge.missing(operations):
            raise ValueError(f"{self.name}'s access table has no rule for {', '.join(missing)}")
        self.http = HttpEndpoint(app, settings.host, settings.http_port, settings.tls, shared_port=shared)
        self.background_tasks = dict(background_tasks or {})
        self.on_start = list(on_start)
        self.on_stop = list(on_stop)
        self.failed = False  # a background task died: the process should exit non-zero
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._readiness_loop: asyncio.Task[None] | None = None
        self._stop_requested = asyncio.Event()
        self._stopped = False

    @property
    def stop_budget_s(self) -> float:
        """Longest a stop may take when hooks hang: beyond it, the process runner gives up and exits."""
        return self.settings.shutdown_grace_s + 1.0 + HOOK_TIMEOUT_S * len(self.on_stop)

    async def start(self) -> None:
        """Raises `StartupError` (e.g. `PortInUseError`) with nothing left running."""
        setup_telemetry(self.settings)
        if self.workers is not None:
            tag_logs(worker=self.workers.worker.index)
        await self.http.start()  # bound first: the HTTP port is the one probes and `modelyard up` watch
        try:
            await self.grpc.start()
            for hook in self.on_start:
                await hook()
        except BaseException:
            await self.http.stop(0)
            await self.grpc.stop(0)
            raise
        for name, task in self.background_tasks.items():
            self._tasks[name] = asyncio.create_task(task(), name=name)
            self._tasks[name].add_done_callback(self._task_done)
        self._readiness_loop = asyncio.create_task(self._watch_readiness(), name="readiness")
        log.info(
            "%s started",
            self.name,
            extra={"grpc": f"{self.settings.host}:{self.grpc.port}", "http": f"{self.settings.host}:{self.http.port}"},
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Service]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    async def run(self, stop: asyncio.Event) -> int:
        """Start, serve until `stop` is set or a background task fails, stop; the process exit code."""
        await self.start()
        stop_waiter = asyncio.create_task(stop.wait())
        failure_waiter = asyncio.create_task(self._stop_requested.wait())
        await asyncio.wait([stop_waiter, failure_waiter], return_when=asyncio.FIRST_COMPLETED)
        stop_waiter.cancel()
        failure_waiter.cancel()
        await self.stop()
        return 1 if self.failed else 0

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.shutdown_grace_s
        log.info("%s stopping: draining for up to %.1fs", self.name, grace)
        self.readiness.start_draining()
        if self._readiness_loop is not None:
            self._readiness_loop.cancel()
        for task in self._tasks.values():
            task.cancel()
        draining = [
            asyncio.create_task(self.grpc.stop(grace)),
            asyncio.create_task(self.http.stop(grace)),
            *self._tasks.values(),
        ]
        _, hung = await asyncio.wait(draining, timeout=grace + 1.0)
        if hung:
            log.warning("%d servers or tasks still running after the grace period", len(hung))
        for hook in reversed(self.on_stop):
            try:
                async with asyncio.timeout(HOOK_TIMEOUT_S):
                    await hook()
            except Exception:
                log.exception("on-stop hook %s failed", getattr(hook, "__qualname__", hook))
        log.info("%s stopped", self.name)

    @property
    def ready(self) -> bool:
        return self.readiness.report.ready

    async def _watch_readiness(self) -> None:
        serving: bool | None = None
        while True:
            report = await self.readiness.evaluate()
            if self.workers is not None:
                self.workers.publish(report)
                gauges.refresh()
            if report.ready != serving:
                serving = report.ready
                await self.grpc.set_serving(serving)
            # A worker looks again soon: its peers' readiness is part of its own, and its status is their heartbeat.
            fast = not serving or self.workers is not None
            await asyncio.sleep(NOT_READY_INTERVAL_S if fast else READINESS_INTERVAL_S)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            log.info("background task %s finished", task.get_name())
            return
        # A consumer that died would leave the service up but deaf; better to exit and be restarted.
        log.error("background task %s failed; stopping", task.get_name(), exc_info=error)
        self.failed = True
        self._stop_requested.set()
