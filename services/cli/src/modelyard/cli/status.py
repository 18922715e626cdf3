"""`modelyard status`: is each service of a stack alive and ready? Over both of its transports."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from modelyard.cli.connection import client_tls
from modelyard.cli.stack import DEFAULT_DATA_DIR, SERVICES, StackState
from modelyard.tls import ClientTls, grpc_aio_channel, http_scheme

out = Console()
err = Console(stderr=True, soft_wrap=True)  # errors name ports and paths: never wrap them


@dataclass
class Target:
    name: str
    grpc: str | None = None
    http: str | None = None


@dataclass(frozen=True)
class Probe:
    healthy: bool
    detail: str


def status(
    data_dir: Annotated[Path, typer.Option(help="Data dir of a `modelyard up` (reads its up.json).")] = (
        DEFAULT_DATA_DIR
    ),
    grpc_address: Annotated[
        list[str] | None,
        typer.Option("--grpc", metavar="SERVICE=HOST:PORT", help="Check this gRPC address instead; repeatable."),
    ] = None,
    http_address: Annotated[
        list[str] | None,
        typer.Option("--http", metavar="SERVICE=URL", help="Check this HTTP base URL instead; repeatable."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer.")] = 3.0,
) -> None:
    """Health of each service (HTTP /readyz and gRPC health); exits non-zero unless all are healthy."""
    bootstrap: str | None = None
    tls = client_tls()
    state: StackState | None = None
    if grpc_address or http_address:
        targets = _explicit_targets(grpc_address or [], http_address or [], tls)
    else:
        state = StackState.load(data_dir.resolve())
        if state is None:
            err.print(f"[red]error:[/] no modelyard up is running with data dir {data_dir} (no up.json)")
            raise typer.Exit(1)
        targets = [Target(n, r.grpc, r.http) for n, r in state.services.items()]
        bootstrap = state.broker.bootstrap
        tls = state.client_tls
    rows, broker = asyncio.run(_probe_all(targets, bootstrap, timeout, tls))
    table = Table(title="modelyard status")
    for column in ("service", "gRPC", "gRPC health", "HTTP", "/readyz", "restarts"):
        table.add_column(column, no_wrap=column != "/readyz")
    for target, (health, ready) in zip(targets, rows, strict=True):
        record = state.services.get(target.name) if state else None
        restarts = _restarts(record.restarts, record.last_exit) if record else ""
        table.add_row(target.name, target.grpc or "", _cell(health), target.http or "", _cell(ready), restarts)
    if broker is not None and bootstrap is not None:
        restarts = _restarts(state.broker.restarts, state.broker.last_exit) if state else ""
        table.add_row("kafka", bootstrap, _cell(broker), "", "", restarts)
    out.print(table)
    probes = [p for pair in rows for p in pair if p is not None] + ([broker] if broker else [])
    raise typer.Exit(0 if probes and all(p.healthy for p in probes) else 1)


def _explicit_targets(grpc_addresses: list[str], http_addresses: list[str], tls: ClientTls | None) -> list[Target]:
    targets: dict[str, Target] = {}
    for kind, addresses in (("grpc", grpc_addresses), ("http", http_addresses)):
        for address in addresses:
            name, _, value = address.partition("=")
            if not value:
                raise typer.BadParameter(f"{address!r}: expected SERVICE=ADDRESS", param_hint=f"--{kind}")
            if kind == "http" and "://" not in value:
                value = f"{http_scheme(tls)}://{value}"
            setattr(targets.setdefault(name, Target(name)), kind, value)
    order = {name: i for i, name in enumerate(SERVICES)}
    return sorted(targets.values(), key=lambda t: order.get(t.name, len(order)))


async def _probe_all(
    targets: list[Target], bootstrap: str | None, timeout_s: float, tls: ClientTls | None
) -> tuple[list[tuple[Probe | None, Probe | None]], Probe | None]:
    async with httpx.AsyncClient(timeout=timeout_s, verify=tls.ssl_context() if tls else True) as client:
        pairs = [asyncio.gather(_grpc_health(t.grpc, timeout_s, tls), _readyz(client, t.http)) for t in targets]
        rows = [(health, ready) for health, ready in await asyncio.gather(*pairs)]
    broker = await _kafka(bootstrap, timeout_s) if bootstrap else None
    return rows, broker


async def _grpc_health(address: str | None, timeout_s: float, tls: ClientTls | None) -> Probe | None:
    if address is None:
        return None
    import grpc  # here, like the Kafka client below: every `modelyard` command loads this module
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc_aio_channel(address, tls) as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            return Probe(False, f"{exc.code().name}")
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return Probe(response.status == health_pb2.HealthCheckResponse.SERVING, name)


async def _readyz(client: httpx.AsyncClient, base_url: str | None) -> Probe | None:
    if base_url is None:
        return None
    try:
        response = await client.get(f"{base_url}/readyz")
    except httpx.HTTPError as exc:
        return Probe(False, f"unreachable ({type(exc).__name__})")
    if response.status_code == 200:
        degraded = _checks(_json_field(response, "degraded"))
        return Probe(True, f"ready, [yellow]degraded: {degraded}[/]" if degraded else "ready")
    failing = _checks(_json_field(response, "failing"))
    return Probe(False, f"not ready: {failing or response.status_code}")


# modelyard.runtime.workers' checks, named here: importing the runtime would slow every CLI command's start.
_WORKER_CHECKS = ("workers", "workers-degraded")


def _checks(failing: dict[str, str]) -> str:
    """The failing checks by name; the workers' with which worker and why (a service's worker processes)."""
    return ", ".join(
        f"{name} ({why.partition(': ')[2]})" if name in _WORKER_CHECKS else name for name, why in failing.items()
    )


def _json_field(response: httpx.Response, name: str) -> dict[str, str]:
    try:
        value = response.json().get(name, {})
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def _kafka(bootstrap: str, timeout_s: float) -> Probe:
    from modelyard.runtime.readiness import probe_kafka

    try:
        await probe_kafka(bootstrap, timeout_s)
    except Exception as exc:
        return Probe(False, f"{type(exc).__name__}")
    return Probe(True, "answers")


def _restarts(count: int, last_exit: int | None) -> str:
    """How often `modelyard up` restarted a process, and the exit code that caused the last restart."""
    return f"[yellow]{count} (last exit code {last_exit})[/]" if count else "0"


def _cell(probe: Probe | None) -> str:
    if probe is None:
        return ""
    return f"[green]{probe.detail}[/]" if probe.healthy else f"[red]{probe.detail}[/]"
