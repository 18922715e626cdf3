"""Child processes of `modelyard up`: started in their own process group, killed with it, never left behind."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from modelyard.runtime.children import Restarts, die_with_parent

__all__ = ["Child", "Restarts", "respawn", "spawn", "stop_all"]


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str]
    env: Mapping[str, str]  # what `spawn` added to this process's environment

    @property
    def pid(self) -> int:
        return self.process.pid

    def exited(self) -> bool:
        return self.process.poll() is not None

    def log_tail(self, lines: int = 20) -> list[str]:
        """The last `lines` of the child's log, JSON log lines shown as `LEVEL logger: message`."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [_readable(line) for line in text.splitlines()[-lines:]]


def _readable(line: str) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    if not isinstance(entry, dict) or "message" not in entry:
        return line
    text = f"{entry.get('level', '')} {entry.get('logger', '')}: {entry['message']}"
    exception = entry.get("exception")
    return f"{text}\n{exception}" if exception else text


def spawn(name: str, argv: list[str], env: Mapping[str, str], log_path: Path) -> Child:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own process group: Ctrl-C in the terminal reaches `up` only, which stops children in order.
            start_new_session=True,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )
    return Child(name, process, log_path, argv, env)


def respawn(child: Child) -> Child:
    """The same command, environment and log (appended to) in a new process."""
    return spawn(child.name, child.argv, child.env, child.log_path)


def stop_all(children: Iterable[Child], grace_s: float) -> None:
    """SIGTERM every child's process group, wait up to `grace_s`, then SIGKILL what is left; reaps all."""
    children = list(children)
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.process.wait()


def _signal_group(child: Child, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)
