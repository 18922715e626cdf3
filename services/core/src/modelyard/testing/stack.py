"""`modelyard up` as a process, the way a person runs it, for the end-to-end and fault-injection suites: free ports,
waiting until `modelyard status` passes, and stopping it (and, after a failed test, whatever it left) for good."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from modelyard.kafka.embedded import free_port

SERVICES = ("registry", "serving", "monitor", "governance")
STARTUP_TIMEOUT_S = 120.0  # four Python processes importing their stacks; ~20 s on an idle 2-core machine


def modelyard(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelyard.cli", *args]


def distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its exit status is left


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = {int(c) for c in (task / "children").read_text().split()}
        except FileNotFoundError:
            continue
        for child in children:
            found |= {child, *descendants(child)}
    return found


def planned_ports() -> tuple[int, dict[str, dict[str, int]]]:
    """A free broker port and free gRPC and HTTP ports for every service."""
    ports = distinct_free_ports(1 + 2 * len(SERVICES))
    return ports.pop(), {service: {"grpc": ports.pop(), "http": ports.pop()} for service in SERVICES}


def port_options(ports: dict[str, dict[str, int]]) -> list[str]:
    return [
        option
        for service, kinds in ports.items()
        for kind, port in kinds.items()
        for option in ("--port", f"{service}.{kind}={port}")
    ]


class Stack:
    def __init__(self, data_dir: Path, *options: str, env: Sequence[str] = ()) -> None:
        """`options`: more options of `modelyard up` (e.g. `--users`); `env`: `SERVICE.KEY=VALUE` settings, passed as
        `--env` options."""
        self.data_dir = data_dir
        self.broker_port, self.ports = planned_ports()
        self.output = data_dir.parent / "up.out"
        with self.output.open("wb") as output:
            self.process = subprocess.Popen(
                modelyard(
                    "up",
                    *("--data-dir", str(data_dir), "--broker-port", str(self.broker_port)),
                    *("--timeout", str(STARTUP_TIMEOUT_S), *port_options(self.ports)),
                    *(option for setting in env for option in ("--env", setting)),
                    *options,
                ),
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self) -> dict[str, object]:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert self.process.poll() is None, f"up exited early:\n{self.output.read_text()}"
            if (self.data_dir / "up.json").exists():
                status = subprocess.run(
                    modelyard("status", "--data-dir", str(self.data_dir)), capture_output=True, text=True
                )
                if status.returncode == 0:
                    state: dict[str, object] = json.loads((self.data_dir / "up.json").read_text())
                    return state
            assert time.monotonic() < deadline, f"not healthy in {STARTUP_TIMEOUT_S}s:\n{self.output.read_text()}"
            time.sleep(0.2)

    def stop(self) -> None:
        """After a failed test: the way a person stops it, then by force, so no broker or service leaks."""
        if self.process.poll() is not None:
            return
        started = descendants(self.process.pid)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
