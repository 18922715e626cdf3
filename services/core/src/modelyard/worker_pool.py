"""`WorkerPool`: a few spawned worker processes for CPU- and GIL-heavy work (shap's explainers, evaluating a model).

In a thread such work would hold the GIL for seconds at a time and starve the service's event loop: its consumers,
gRPC answers and periodic work. In a worker process it cannot, and a model that crashes onnxruntime takes the worker
down, not the service. Workers are spawned, never forked (a service process holds gRPC, Kafka and onnxruntime
threads), start at a lower CPU priority (`niceness`) so that the service keeps the cores when they are short, and may
run a `warm` function first (imports, compilation) so that the first job does not pay for it.

A worker that dies (killed, out of memory, a crashing native library) fails the jobs it held with `WorkerDied`;
the next job gets a fresh pool.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class WorkerDied(RuntimeError):
    """A worker process stopped while it ran a job."""


def _start(niceness: int, warm: Callable[[], Any] | None) -> None:
    os.nice(niceness)
    if warm is not None:
        warm()


class WorkerPool:
    def __init__(self, workers: int, niceness: int = 10, warm: Callable[[], Any] | None = None) -> None:
        self.workers = workers
        self.niceness = niceness
        self._warm = warm
        self._pool: ProcessPoolExecutor | None = None

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` in a worker and wait for it (from a thread: the caller blocks, the GIL does not)."""
        pool = self._executor()
        try:
            return pool.submit(fn, *args, **kwargs).result()
        except BrokenProcessPool as exc:
            raise self._died(pool) from exc

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` in a worker without blocking the event loop."""
        pool = self._executor()
        try:
            return await asyncio.wrap_future(pool.submit(fn, *args, **kwargs))
        except BrokenProcessPool as exc:
            raise self._died(pool) from exc

    def _died(self, pool: ProcessPoolExecutor) -> WorkerDied:
        if self._pool is pool:
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)
        return WorkerDied("a worker process stopped while it ran the job (killed, out of memory or crashed)")

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start,
                initargs=(self.niceness, self._warm),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
