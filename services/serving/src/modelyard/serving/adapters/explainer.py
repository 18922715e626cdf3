"""Attributions in worker processes, off the inference path.

shap's explainers are Python- and GIL-heavy and run a model thousands of times per explained row; in a thread they
would take the GIL from the event loop that answers inferences. They run in a small process pool instead (spawned,
never forked: the server process holds gRPC and onnxruntime threads), at a lower CPU priority (`niceness`) so
that inference keeps the cores when they are short. A worker loads each version's model once,
from a file the server writes when the version is first explained, and keeps a few sessions by digest.

The pool is bounded: `workers` explanations run, `queue` more may wait; beyond that `reserve` refuses with
`PoolFull` (RESOURCE_EXHAUSTED) at once rather than letting callers pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import multiprocessing
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelyard.attributions import Attributions, Column, attribute
from modelyard.serving.adapters.onnx import OnnxLoader, OnnxRunner
from modelyard.serving.domain.errors import ArtifactError, Unavailable
from modelyard.serving.domain.explanation import ExplanationFailed, InputLayout, PoolFull
from modelyard.serving.domain.model import VersionRef
from modelyard.serving.domain.tensors import DTYPES

log = logging.getLogger(__name__)

SESSIONS_PER_WORKER = 4


@dataclass(frozen=True)
class Job:
    """One request's explanation, as sent to a worker process (pickled)."""

    ref: VersionRef
    artifact: Path
    inputs: tuple[InputLayout, ...]
    output: str
    rows: list[Column]
    background: list[Column]
    permutations: int


_runners: OrderedDict[str, OnnxRunner] = OrderedDict()  # in each worker process: the last few versions' sessions


def _runner(job: Job) -> OnnxRunner:
    runner = _runners.pop(job.ref.digest, None)
    if runner is None:
        runner = OnnxLoader(intra_op_threads=1).load(job.ref, job.artifact.read_bytes())
    _runners[job.ref.digest] = runner
    while len(_runners) > SESSIONS_PER_WORKER:
        _runners.popitem(last=False)[1].close()
    return runner


def run_job(job: Job) -> Attributions:
    """In a worker process: the attributions of the job's rows to each column of its output."""
    runner = _runner(job)

    def model(columns: list[Column]) -> Column:
        feeds = {}
        start = 0
        for spec in job.inputs:
            block = np.column_stack(columns[start : start + spec.width])
            start += spec.width
            dtype = np.dtype(object) if spec.datatype == "BYTES" else DTYPES[spec.datatype]
            feeds[spec.name] = block.astype(dtype).reshape(len(block), *spec.row_shape)
        return np.asarray(runner.run(feeds, [job.output])[0])

    return attribute(model, job.rows, job.background, permutations=job.permutations)


def _start_worker(niceness: int) -> None:
    """Worker initializer: lower the worker's CPU priority (inference comes first when cores are short), import
    shap and compile its numba kernels before the first request needs them."""
    os.nice(niceness)
    rows = [np.zeros(1), np.zeros(1)]
    attribute(lambda columns: columns[0] + columns[1], rows, [np.ones(2), np.ones(2)], permutations=1)


class ProcessExplainer:
    def __init__(self, workers: int, queue: int, permutations: int, niceness: int = 10) -> None:
        self.workers = workers
        self.niceness = niceness
        self.capacity = workers + queue
        self.permutations = permutations
        self.in_flight = 0
        self._pool: ProcessPoolExecutor | None = None
        self._files = Path(tempfile.mkdtemp(prefix="modelyard-explain-"))
        self._writing: dict[str, asyncio.Lock] = {}

    @contextlib.contextmanager
    def reserve(self) -> Iterator[None]:
        """A place in the pool for one explanation, or ResourceExhausted when all are taken."""
        if self.in_flight >= self.capacity:
            raise PoolFull(
                f"the explanation pool is full ({self.in_flight} explanations running or waiting): try again later"
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def run(
        self,
        ref: VersionRef,
        artifact: Callable[[], Awaitable[bytes]],
        inputs: Sequence[InputLayout],
        output: str,
        rows: list[Column],
        background: list[Column],
    ) -> Attributions:
        path = await self._artifact_file(ref, artifact)
        job = Job(ref, path, tuple(inputs), output, rows, background, self.permutations)
        pool = self._executor()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, run_job, job)
        except BrokenProcessPool as exc:
            # A worker died (killed, out of memory): start a fresh pool for the next request.
            log.error("an explanation worker died: restarting the pool")
            if self._pool is pool:
                self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise Unavailable("the explanation worker stopped: try again") from exc
        except Exception as exc:  # whatever shap or onnxruntime raised in the worker
            raise ExplanationFailed(f"explaining {ref} failed: {exc}") from exc

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_start_worker, initargs=(self.niceness,)
            )
        return self._pool

    async def _artifact_file(self, ref: VersionRef, artifact: Callable[[], Awaitable[bytes]]) -> Path:
        path = self._files / f"{ref.digest.removeprefix('sha256:')}.onnx"
        async with self._writing.setdefault(ref.digest, asyncio.Lock()):
            if not path.exists():
                data = await artifact()
                digest = "sha256:" + await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
                if digest != ref.digest:
                    raise ArtifactError(f"artifact of {ref} has digest {digest}, the plan names {ref.digest}")
                partial = path.with_suffix(".partial")
                await asyncio.to_thread(partial.write_bytes, data)
                partial.replace(path)  # a worker never reads a half-written model
        return path

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        shutil.rmtree(self._files, ignore_errors=True)
