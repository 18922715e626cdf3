"""Child processes that must not outlive their parent, and when to restart one that exited on its own: shared by
`modelyard up` (which supervises the services) and a service's worker supervisor (which supervises its workers)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections import deque
from dataclasses import dataclass, field

from modelyard.retry import Backoff

_PR_SET_PDEATHSIG = 1
# Loaded before any fork: the preexec function must not load libraries in the child.
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def die_with_parent(parent_pid: int, signum: int = signal.SIGTERM) -> None:
    """In the child, before exec: the kernel sends `signum` when the parent dies, even by SIGKILL."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


RESTART_BACKOFF = Backoff(first_s=1.0, max_s=30.0)


@dataclass
class Restarts:
    """When to restart a process that exited on its own: after `backoff.first_s`, doubling with every crash in the
    last `window_s` (up to `backoff.max_s`); not at all once it crashed `limit` times in that window (a crash loop
    that restarting will not fix)."""

    backoff: Backoff = RESTART_BACKOFF
    limit: int = 5
    window_s: float = 60.0
    count: int = 0  # restarts so far
    last_exit: int | None = None
    _crashes: deque[float] = field(default_factory=deque)

    def crashed(self, exit_code: int, now: float) -> float | None:
        """Record an exit; the seconds to wait before restarting, or None when it crash-loops."""
        self.last_exit = exit_code
        self._crashes.append(now)
        while now - self._crashes[0] > self.window_s:
            self._crashes.popleft()
        if len(self._crashes) >= self.limit:
            return None
        return self.backoff.wait_s(len(self._crashes))

    def describe(self) -> str:
        return f"{self.count} restarts, last exit code {self.last_exit}" if self.count else "no restarts"
