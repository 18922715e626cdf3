"""Attributions in worker processes, off the inference path.

shap's explainers are Python- and GIL-heavy and run a model thousands of times per explained row; in a thread they
would take the GIL from the event loop that answers inferences. They run in a small `WorkerPool` of spawned
processes instead, at a lower CPU priority (`niceness`) so that inference keeps the cores when they are short. A
worker loads each version's model once, from a file the server writes when the version is first explained, and
keeps a few sessions by digest.

The pool is bounded: `workers` explanations run, `queue` more may wait; beyond that `reserve` refuses with
`PoolFull` (RESOURCE_EXHAUSTED) at once rather than letting callers pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelyard.attributions import Attributions, Column, attribute, warm
from modelyard.serving.adapters.onnx import OnnxLoader, OnnxRunner
from modelyard.serving.domain.errors import ArtifactError, Unavailable
from modelyard.serving.domain.explanation import ExplanationFailed, InputLayout, PoolFull
from modelyard.serving.domain.model import VersionRef
from modelyard.serving.domain.tensors import DTYPES
from modelyard.worker_pool import WorkerDied, WorkerPool

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


class ProcessExplainer:
    def __init__(self, workers: int, queue: int, permutations: int, niceness: int = 19) -> None:
        self.capacity = workers + queue
        self.permutations = permutations
        self.in_flight = 0
        self._pool = WorkerPool(workers, niceness, warm=warm)
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
        try:
            return await self._pool.run(run_job, job)
        except WorkerDied as exc:  # the next request gets a fresh pool
            log.error("an explanation worker died: %s", exc)
            raise Unavailable("the explanation worker stopped: try again") from exc
        except Exception as exc:  # whatever shap or onnxruntime raised in the worker
            raise ExplanationFailed(f"explaining {ref} failed: {exc}") from exc

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
        self._pool.close()
        shutil.rmtree(self._files, ignore_errors=True)
