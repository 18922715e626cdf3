"""`run_service`: what each service's `__main__` calls. Owns the process: settings, signals, exit codes.

Exit codes: 0 stopped as asked; 1 could not start (e.g. port in use) or a background task died; 2 invalid
settings; 128+signal when a second signal or the stop watchdog cuts a stop short.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import NoReturn, TypeVar

from pydantic import ValidationError

from modelyard.runtime.ports import StartupError
from modelyard.runtime.service import Service
from modelyard.runtime.supervisor import supervise_workers
from modelyard.settings import ServiceSettings
from modelyard.telemetry import configure_logging, shutdown_telemetry

log = logging.getLogger(__name__)

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_service(
    settings_class: type[SettingsT],
    build: Callable[[SettingsT], Service],
    *,
    workers: Callable[[SettingsT], int] | None = None,
) -> NoReturn:
    """Load settings from the environment, build the service, run it until SIGTERM/SIGINT, exit. When `workers`
    asks for more than one, this process supervises that many worker processes instead (each of them runs
    `run_service` again, as a worker: see `modelyard.runtime.supervisor`)."""
    configure_logging(settings_class.service_name)
    try:
        # The base class's fields take positional Field defaults, which mypy (without the pydantic plugin)
        # reads as required arguments.
        settings = settings_class()
    except ValidationError as exc:
        log.error("invalid settings: %s", describe_invalid_settings(settings_class, exc))
        sys.exit(2)
    count = workers(settings) if workers is not None else 1
    if count > 1:
        configure_logging(settings.service_name, settings.log_level)
        sys.exit(supervise_workers(settings, count))
    try:
        code = asyncio.run(_serve_until_signalled(settings, build))
    except StartupError as exc:
        log.error("%s cannot start: %s", settings.service_name, exc)
        code = 1
    finally:
        shutdown_telemetry()
    sys.exit(code)


def describe_invalid_settings(settings_class: type[ServiceSettings], error: ValidationError) -> str:
    """One line per problem, named by the environment variable a person would set."""
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    problems = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        problems.append(f"{prefix}{field.upper()}: {problem['msg']}" if field else problem["msg"])
    return "; ".join(problems)


async def _serve_until_signalled(settings: SettingsT, build: Callable[[SettingsT], Service]) -> int:
    # Built on the running loop: asyncio clients (aiokafka, grpc.aio) bind to the loop they are created on.
    service = build(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def stop_soon(signum: int) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("second %s; exiting without draining", signal.Signals(signum).name)
            os._exit(128 + signum)
        # The watchdog starts here, not on the loop, so that a loop blocked by a hung call still gets cut short.
        watchdog = threading.Timer(service.stop_budget_s, _give_up, args=(signum, service.stop_budget_s))
        watchdog.daemon = True
        watchdog.start()
        loop.call_soon_threadsafe(stop_soon, signum)

    # signal.signal rather than loop.add_signal_handler: the handler must run even when the loop is stuck.
    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    try:
        return await service.run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _give_up(signum: int, budget_s: float) -> None:
    log.error("stop did not finish within %.1fs; exiting", budget_s)
    os._exit(128 + signum)
