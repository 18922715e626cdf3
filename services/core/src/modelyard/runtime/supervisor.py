"""A service as N worker processes: the supervisor that `run_service` becomes when a service asks for workers.

Each worker is the same service (`python -m modelyard.<service>`) with `worker` set in its environment: a full
replica that binds the shared gRPC and HTTP ports with SO_REUSEPORT (the kernel spreads connections over them),
publishes its readiness in the status table (`modelyard.runtime.workers`) and its metrics in prometheus_client's
multiprocess directory, both under one directory per start. The supervisor:

- holds both ports for the workers (`reserve_port`): a port already in use fails the start with exit code 1;
- restarts a worker that exits on its own after a backoff (1 s doubling to 30 s), logged and counted in the status
  table; a worker that fails before it was ever ready, or crashes five times within a minute, stops them all
  (exit 1, or 2 for invalid settings, the worker's own code);
- forwards SIGTERM/SIGINT to every worker, which drain as one process would; a second signal kills them.

Workers run in their own sessions (a terminal's Ctrl-C reaches the supervisor only, which forwards it once) and
die with the supervisor (PR_SET_PDEATHSIG, SIGKILL: a supervisor killed outright is restarted, and its successor
needs the ports), so none is left behind.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from prometheus_client.multiprocess import mark_process_dead

from modelyard.runtime.children import Restarts, die_with_parent
from modelyard.runtime.ports import StartupError, reserve_port
from modelyard.runtime.workers import SUPERVISOR_FILE, SupervisorView, WorkerSettings, read_json, write_json
from modelyard.settings import ServiceSettings

log = logging.getLogger(__name__)

POLL_S = 0.1
STOP_MARGIN_S = 30.0  # beyond the drain grace: each worker's own stop watchdog cuts a stop short before this
INVALID_SETTINGS = 2


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    restarts: Restarts = field(default_factory=Restarts)
    restart_at: float | None = None
    was_ready: bool = False


class WorkerSupervisor:
    def __init__(self, settings: ServiceSettings, count: int, run_dir: Path, ports: tuple[int, int]) -> None:
        self.settings = settings
        self.count = count
        self.worker_settings = [WorkerSettings(index=i, count=count, run_dir=run_dir) for i in range(count)]
        self.status_dir = self.worker_settings[0].status_dir
        self.metrics_dir = self.worker_settings[0].metrics_dir
        self.status_dir.mkdir(parents=True)
        self.metrics_dir.mkdir(parents=True)
        self.ports = ports
        self.workers = [_Worker(i) for i in range(count)]
        self.view = SupervisorView(count)
        self.stop_signal: int | None = None

    def run(self) -> int:
        """Start the workers and watch them until a stop signal or a failure; the process exit code."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for worker in self.workers:
                self._start(worker)
            log.info(
                "%s: %d workers on gRPC port %d and HTTP port %d",
                self.settings.service_name,
                self.count,
                *self.ports,
                extra={"workers": self.count},
            )
            code = self._watch()
            return self._stop_all(code)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch(self) -> int | None:
        """None when asked to stop, else the exit code of a failure that stops everything."""
        while self.stop_signal is None:
            now = time.monotonic()
            for worker in self.workers:
                if worker.process is None:
                    if worker.restart_at is not None and now >= worker.restart_at:
                        worker.restarts.count += 1
                        self.view.restarts[worker.index] = worker.restarts.count
                        self._start(worker)
                    continue
                worker.was_ready = worker.was_ready or self._reported_ready(worker)
                code = worker.process.poll()
                if code is not None and (failure := self._exited(worker, code, now)) is not None:
                    return failure
            time.sleep(POLL_S)
        return None

    def _exited(self, worker: _Worker, code: int, now: float) -> int | None:
        assert worker.process is not None
        pid, worker.process = worker.process.pid, None
        mark_process_dead(pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
        (self.status_dir / f"worker-{worker.index}.json").unlink(missing_ok=True)
        if not worker.was_ready:
            log.error("worker %d exited with code %d before it was ready; stopping", worker.index, code)
            return code if code == INVALID_SETTINGS else 1
        wait = worker.restarts.crashed(code, now)
        if wait is None:
            log.error("worker %d crash-loops (exit code %d); stopping", worker.index, code)
            return 1
        log.warning("worker %d (pid %d) exited with code %d; restarting in %.1fs", worker.index, pid, code, wait)
        worker.restart_at = now + wait
        worker.was_ready = False
        self.view.down[worker.index] = f"exited with code {code}, restarting in {wait:g}s"
        self._publish_view()
        return None

    def _start(self, worker: _Worker) -> None:
        prefix = str(type(self.settings).model_config.get("env_prefix", ""))
        env = {
            **os.environ,
            f"{prefix}WORKER": self.worker_settings[worker.index].model_dump_json(),
            f"{prefix}GRPC_PORT": str(self.ports[0]),
            f"{prefix}HTTP_PORT": str(self.ports[1]),
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
        }
        worker.process = subprocess.Popen(
            [sys.executable, "-m", f"modelyard.{self.settings.service_name}"],
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # Killed outright with the supervisor: a supervisor that died without stopping its workers is restarted
            # by whoever runs it, and its successor needs the ports that draining workers would still hold.
            preexec_fn=functools.partial(die_with_parent, os.getpid(), signal.SIGKILL),
        )
        worker.restart_at = None
        self.view.down.pop(worker.index, None)
        self._publish_view()

    def _reported_ready(self, worker: _Worker) -> bool:
        status = read_json(self.status_dir / f"worker-{worker.index}.json")
        return bool(status and status.get("ready"))

    def _publish_view(self) -> None:
        write_json(self.status_dir / SUPERVISOR_FILE, self.view.as_json())

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_signal is not None:
            log.warning("second %s; killing the workers", signal.Signals(signum).name)
            for worker in self.workers:
                if worker.process is not None:
                    worker.process.kill()
            os._exit(128 + signum)
        log.info("received %s; stopping the workers", signal.Signals(signum).name)
        self.stop_signal = signum

    def _stop_all(self, failure: int | None) -> int:
        """SIGTERM every worker, wait for their drain, SIGKILL what is left; 0 when all stopped as asked."""
        running = [worker.process for worker in self.workers if worker.process is not None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace_s + STOP_MARGIN_S
        codes = []
        for process in running:
            try:
                codes.append(process.wait(max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop in time; killing it", process.pid)
                process.kill()
                codes.append(process.wait())
        if failure is not None:
            return failure
        return 0 if all(code == 0 for code in codes) else 1


def supervise_workers(settings: ServiceSettings, count: int) -> int:
    """Run the service as `count` worker processes until signalled; the process exit code."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"modelyard-{settings.service_name}-"))
    try:
        with contextlib.ExitStack() as reserved:
            try:
                grpc_socket = reserved.enter_context(reserve_port("gRPC", settings.host, settings.grpc_port))
                http_socket = reserved.enter_context(reserve_port("HTTP", settings.host, settings.http_port))
            except StartupError as exc:
                log.error("%s cannot start: %s", settings.service_name, exc)
                return 1
            ports = (grpc_socket.getsockname()[1], http_socket.getsockname()[1])
            return WorkerSupervisor(settings, count, run_dir, ports).run()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
