"""`modelyard up`: the whole stack on this machine: a Kafka broker, its topics, and the four services as
separate processes, until Ctrl-C or SIGTERM; then everything it started is stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.status import Status
from rich.table import Table

from modelyard.cli.stack import (
    DEFAULT_DATA_DIR,
    SERVICES,
    STATE_FILE,
    BrokerRecord,
    ServiceRecord,
    StackError,
    StackState,
    TlsRecord,
    parse_env_options,
    plan_ports,
    service_env,
    stack_pki,
    tls_env,
    trust_env,
    worker_count,
)
from modelyard.cli.supervisor import Child, Restarts, respawn, spawn, stop_all
from modelyard.cli.users import USERS_FILE, ensure_users, identity_settings, parse_users
from modelyard.kafka.embedded import BrokerStartError, EmbeddedBroker, port_is_free
from modelyard.runtime.ports import client_host, format_address

BROKER_HOST = "127.0.0.1"  # the embedded broker is for this machine only, whatever --host says
CHILD_STOP_GRACE_S = 20.0  # beyond a service's own drain (10 s by default) before SIGKILL
LOG_TAIL_LINES = 20

out = Console()
err = Console(stderr=True, soft_wrap=True)  # errors name ports and paths: never wrap them


class _ServiceFailed(StackError):
    def __init__(self, message: str, child: Child) -> None:
        super().__init__(message)
        self.child = child


@dataclass(frozen=True)
class StackOptions:
    """What `modelyard up` (and `modelyard demo`, which runs the same stack) is asked to start."""

    data_dir: Path = DEFAULT_DATA_DIR
    host: str = "127.0.0.1"
    kafka_bootstrap: str | None = None
    kafka_idempotence: bool | None = None
    broker_port: int = 9092
    base_port: int | None = None
    ports: tuple[str, ...] = ()  # SERVICE.KIND=PORT
    env: tuple[str, ...] = ()  # SERVICE.KEY=VALUE, the key without the service's prefix
    timeout: float = 120.0
    tls: bool = False  # every server TLS with mutual TLS, every client of them too
    tls_dir: Path | None = None  # the PKI's files (default: <data_dir>/tls), made when not all there


BROKER = "kafka"  # the embedded broker's name among the supervised processes


@dataclass
class RunningStack:
    state: StackState
    children: list[Child]
    broker: EmbeddedBroker | None = None
    restarts: dict[str, Restarts] = field(default_factory=dict)

    def watch(self) -> None:
        """Until a signal (KeyboardInterrupt) or a crash loop. A service that exits on its own is started again after
        a backoff (`Restarts`: 1 s, doubling); the embedded broker too, on the same port, with the catalogue's topics
        (the services' clients then heal, see `modelyard.kafka.topic_guard`). Five crashes of one process within a
        minute stop the stack with its log tail and exit status 1: a crash loop needs a person."""
        due: dict[str, float] = {}  # process name -> when to start it again
        while True:
            now = time.monotonic()
            for index, child in enumerate(self.children):
                if child.name in due:
                    if now >= due[child.name]:
                        del due[child.name]
                        self.children[index] = self._restart_service(child)
                elif child.exited():
                    due[child.name] = now + self._backoff(child.name, child.process.returncode, child)
            broker = self.broker
            if broker is not None and BROKER in due:
                if now >= due[BROKER]:
                    del due[BROKER]
                    self._restart_broker(broker)
            elif broker is not None and (code := broker.exit_code) is not None:
                due[BROKER] = now + self._backoff(BROKER, code, None)
            time.sleep(0.2)

    def _backoff(self, name: str, exit_code: int, child: Child | None) -> float:
        restarts = self.restarts.setdefault(name, Restarts())
        delay = restarts.crashed(exit_code, time.monotonic())
        if delay is None:
            message = (
                f"{name} exited with code {exit_code}, its {restarts.limit}th exit within {restarts.window_s:g}s: "
                f"not restarting it again (crash loop)"
            )
            if child is None:
                raise StackError(f"{message}; see {self.state.broker.log}")
            raise _ServiceFailed(message, child)
        err.print(f"[yellow]{name} exited with code {exit_code}; restarting it in {delay:g}s[/]")
        return delay

    def _restart_service(self, child: Child) -> Child:
        restarted = respawn(child)
        restarts = self.restarts[child.name]
        restarts.count += 1
        record = self.state.services[child.name]
        record.pid, record.restarts, record.last_exit = restarted.pid, restarts.count, restarts.last_exit
        self.state.save()
        err.print(f"restarted {child.name} (pid {restarted.pid}, {restarts.describe()})")
        return restarted

    def _restart_broker(self, broker: EmbeddedBroker) -> None:
        from modelyard.events.topics import ALL
        from modelyard.kafka.admin import ensure_topics, repair_topics

        broker.start()  # same port; BrokerStartError (say, the port was taken meanwhile) ends the stack

        async def restore_topics() -> None:
            await ensure_topics(broker.bootstrap)
            # Clients that reconnected first may have re-created topics with the broker's default partitions.
            await repair_topics(broker.bootstrap, ALL)

        asyncio.run(restore_topics())
        restarts = self.restarts[BROKER]
        restarts.count += 1
        record = self.state.broker
        record.pid, record.restarts, record.last_exit = broker.pid, restarts.count, restarts.last_exit
        self.state.save()
        err.print(f"restarted the embedded broker on {broker.bootstrap} with its topics ({restarts.describe()})")


def up(
    data_dir: Annotated[
        Path, typer.Option(help="Where state lives: <dir>/<service> for each service, logs/, up.json.")
    ] = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option(help="Address the services bind to.")] = "127.0.0.1",
    kafka_bootstrap: Annotated[
        str | None, typer.Option(help="Use this Kafka cluster instead of starting the embedded broker.")
    ] = None,
    kafka_idempotence: Annotated[
        bool | None,
        typer.Option(help="Idempotent producers; default: on for --kafka-bootstrap, off for the embedded broker."),
    ] = None,
    broker_port: Annotated[int, typer.Option(help="Port of the embedded broker (on 127.0.0.1).")] = 9092,
    base_port: Annotated[
        int | None,
        typer.Option(help="Eight consecutive ports from here: registry gRPC, registry HTTP, serving gRPC, ..."),
    ] = None,
    port: Annotated[
        list[str] | None,
        typer.Option("--port", metavar="SERVICE.KIND=PORT", help="One port, e.g. serving.grpc=9001; repeatable."),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            metavar="SERVICE.KEY=VALUE",
            help="One setting of one service, without its prefix, e.g. monitor.window_max_events=200; repeatable.",
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every service to be ready.")] = 120.0,
    tls: Annotated[
        bool,
        typer.Option(help="Serve gRPC and HTTPS with mutual TLS; a local CA and certificates are made in the TLS dir."),
    ] = False,
    tls_dir: Annotated[
        Path | None,
        typer.Option(
            help="With --tls: ca.crt, server.crt/.key and client.crt/.key (yours, or made here when not all "
            "there); default: <data-dir>/tls."
        ),
    ] = None,
    users: Annotated[
        str | None,
        typer.Option(
            metavar="NAME:ROLE,...",
            help="Local identities, e.g. alice:publisher,bob:approver: tokens in <data-dir>/users.json (kept across "
            "runs), anonymous access off; then `modelyard --as alice ...`.",
        ),
    ] = None,
) -> None:
    """Run the broker and the four services until Ctrl-C or SIGTERM."""
    with stack_errors_exit():
        _refuse_second_stack(data_dir.resolve())  # before the users file changes under a running stack
        identities = ensure_users(data_dir, parse_users(users)) if users is not None else None
    options = StackOptions(
        data_dir=data_dir,
        host=host,
        kafka_bootstrap=kafka_bootstrap,
        kafka_idempotence=kafka_idempotence,
        broker_port=broker_port,
        base_port=base_port,
        ports=tuple(port or ()),
        env=(*(identity_settings(identities) if identities else ()), *(env or ())),
        timeout=timeout,
        tls=tls or tls_dir is not None,
        tls_dir=tls_dir,
    )
    with stack_errors_exit(), running_stack(options) as stack:
        out.print(addresses_table(stack.state))
        if stack.state.tls is not None:
            record = stack.state.tls
            out.print(
                "mutual TLS: clients trust and present, e.g. for the CLI:\n"
                f"  export MODELYARD_CA_FILE={record.ca_file} MODELYARD_CLIENT_CERT_FILE={record.cert_file} "
                f"MODELYARD_CLIENT_KEY_FILE={record.key_file}",
                soft_wrap=True,
            )
        if identities is not None:
            names = ", ".join(identities.users)
            out.print(f"users {names}: tokens in {data_dir / USERS_FILE}; call as one with `modelyard --as NAME ...`")
        out.print("Ctrl-C to stop.")
        stack.watch()


@contextmanager
def stack_errors_exit() -> Iterator[None]:
    """Ctrl-C stops quietly; a stack that cannot start or dies is one red line (and a log tail), exit status 1."""
    # Imported here, not at the top: every `modelyard` command loads this module, and aiokafka is slow to import.
    from modelyard.kafka.admin import TopicSetupError

    try:
        yield
    except KeyboardInterrupt:
        err.print("stopped")
    except (StackError, BrokerStartError, TopicSetupError) as exc:
        err.print(f"[red]error:[/] {exc}")
        if isinstance(exc, _ServiceFailed):
            err.print(f"last lines of {exc.child.log_path}:", *exc.child.log_tail(LOG_TAIL_LINES), sep="\n")
        raise typer.Exit(1) from None


@contextmanager
def running_stack(options: StackOptions) -> Iterator[RunningStack]:
    """The broker, its topics and the four services, ready; everything is stopped when the block ends, however
    it ends. SIGTERM is turned into KeyboardInterrupt meanwhile, so a terminated caller cleans up too.

    Raises StackError (a bad option, a port in use, a service that failed or was not ready in time),
    BrokerStartError or TopicSetupError.
    """
    from modelyard.kafka.admin import ensure_topics

    data_dir = options.data_dir.resolve()
    host = options.host
    plan = plan_ports(options.base_port, list(options.ports))
    extra_env = parse_env_options(options.env)
    _refuse_second_stack(data_dir)
    _check_ports(host, plan, None if options.kafka_bootstrap else options.broker_port)
    tls = stack_pki(options.tls_dir or data_dir / "tls", host) if options.tls else None
    scheme = "https" if tls else "http"

    broker: EmbeddedBroker | None = None
    children: list[Child] = []
    with _signals_interrupt():
        try:
            logs = data_dir / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            if options.kafka_bootstrap is None:
                broker = EmbeddedBroker(BROKER_HOST, options.broker_port, log_path=logs / "broker.log")
                with err.status(f"starting the embedded Kafka broker on {broker.bootstrap}"):
                    broker.start()
            bootstrap = options.kafka_bootstrap or (broker.bootstrap if broker else "")
            with err.status(f"creating topics on {bootstrap}"):
                asyncio.run(ensure_topics(bootstrap))
            # The embedded broker rejects InitProducerId; a real cluster gets idempotent producers.
            idempotence = options.kafka_idempotence if options.kafka_idempotence is not None else broker is None
            workers: dict[str, int] = {}
            for service in SERVICES:
                env = service_env(service, host, plan, data_dir, bootstrap, idempotence=idempotence)
                env.update(trust_env(service, data_dir))  # signed decisions and incidents, keys made here
                env.update(tls_env(service, tls))
                env.update(extra_env.get(service, {}))
                argv = [sys.executable, "-m", f"modelyard.{service}"]
                children.append(spawn(service, argv, env, logs / f"{service}.log"))
                workers[service] = worker_count(service, env)
            state = StackState(
                pid=os.getpid(),
                data_dir=data_dir,
                broker=BrokerRecord(
                    bootstrap=bootstrap,
                    embedded=broker is not None,
                    log=broker.log_path if broker else None,
                    pid=broker.pid if broker else None,
                ),
                tls=TlsRecord(ca_file=tls.ca_file, cert_file=tls.client.cert_file, key_file=tls.client.key_file)
                if tls
                else None,
                services={
                    child.name: ServiceRecord(
                        grpc=format_address(client_host(host), plan[child.name]["grpc"]),
                        http=f"{scheme}://{format_address(client_host(host), plan[child.name]['http'])}",
                        pid=child.pid,
                        log=child.log_path,
                        workers=workers[child.name],
                    )
                    for child in children
                },
            )
            with err.status("waiting for the services to be ready") as status:
                _wait_ready(children, state, options.timeout, status)
            state.save()
            yield RunningStack(state, children, broker)
        finally:
            # The stop is bounded; a second Ctrl-C must not cut it short halfway and leave processes behind.
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_IGN)
            stop_all(children, CHILD_STOP_GRACE_S)
            if broker is not None:
                broker.stop()
            _forget_state(data_dir)


def _refuse_second_stack(data_dir: Path) -> None:
    state = StackState.load(data_dir)
    if state is not None and state.owner_alive() and state.pid != os.getpid():
        raise StackError(f"modelyard up (pid {state.pid}) is already running with data dir {data_dir}")


def _check_ports(host: str, plan: dict[str, dict[str, int]], broker_port: int | None) -> None:
    """Every port before anything starts, so a clash names its port and its user and leaves nothing behind."""
    wanted = [(f"{service} {kind}", host, p) for service, ports in plan.items() for kind, p in ports.items()]
    if broker_port is not None:
        wanted.append(("embedded Kafka broker", BROKER_HOST, broker_port))
    seen: dict[int, str] = {}
    for user, bind_host, number in wanted:
        if number in seen:
            raise StackError(f"port {number} is planned for both {seen[number]} and {user}")
        seen[number] = user
        if not port_is_free(bind_host, number):
            raise StackError(
                f"{user} port {number} on {bind_host} is already in use "
                "(choose others with --base-port, --port SERVICE.KIND=PORT or --broker-port)"
            )


def _wait_ready(children: list[Child], state: StackState, timeout_s: float, status: Status) -> None:
    deadline = time.monotonic() + timeout_s
    pending = {child.name: child for child in children}
    why: dict[str, str] = {}
    verify = state.client_tls.ssl_context() if state.client_tls else True
    with httpx.Client(timeout=2.0, verify=verify) as client:
        while pending:
            for name, child in list(pending.items()):
                if child.exited():
                    raise _ServiceFailed(f"{name} exited with code {child.process.returncode} during startup", child)
                try:
                    response = client.get(f"{state.services[name].http}/readyz")
                except httpx.HTTPError as exc:
                    why[name] = f"no answer ({type(exc).__name__})"
                    continue
                if response.status_code == 200:
                    del pending[name]
                else:
                    why[name] = _failing_checks(response)
            if not pending:
                return
            if time.monotonic() > deadline:
                slowest = next(iter(pending.values()))
                raise _ServiceFailed(
                    f"not ready within {timeout_s:g}s: " + "; ".join(f"{n} ({why.get(n, '?')})" for n in pending),
                    slowest,
                )
            status.update("waiting for " + ", ".join(f"{n} ({why.get(n, 'starting')})" for n in pending))
            time.sleep(0.2)


def _failing_checks(response: httpx.Response) -> str:
    try:
        failing = response.json().get("failing", {})
    except ValueError:
        failing = {}
    return ", ".join(failing) or f"HTTP {response.status_code}"


def addresses_table(state: StackState) -> Table:
    kind = "embedded" if state.broker.embedded else "external"
    table = Table(title=f"modelyard up: {state.data_dir}", caption=f"logs in {state.data_dir / 'logs'}")
    for column in ("service", "gRPC", "HTTP", "pid", "workers"):
        table.add_column(column, no_wrap=True)
    for name, record in state.services.items():
        table.add_row(name, record.grpc, record.http, str(record.pid), str(record.workers))
    table.add_row("kafka", state.broker.bootstrap, kind, "", "")
    return table


def _forget_state(data_dir: Path) -> None:
    state = StackState.load(data_dir)
    if state is not None and state.pid == os.getpid():
        (data_dir / STATE_FILE).unlink(missing_ok=True)


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM behaves as Ctrl-C (KeyboardInterrupt) while starting and running; both are ignored while
    stopping, which is bounded anyway."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
