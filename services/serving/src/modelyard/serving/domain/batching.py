"""Dynamic batching: concurrent requests for one version run as one onnxruntime call (as Triton's batcher).

A request joins the queue; one batch runs at a time. While it runs, the next requests queue up and then run
together, so batches grow with load. A request that finds the batcher idle runs at once, alone and without a copy
(a version in the worker pool), so a lone request never waits for company and pays nothing for batching. Under load
(the last batch had company), a batch waits for more while they keep coming, each at most a one-row run's cost
apart, up to `max_delay_s` in all (Triton's max queue delay); at one request in flight it never waits. Rows are
concatenated along the first dimension and every output is split back by each request's row count, so it only
applies to models whose inputs and outputs all have a variable batch dimension first (checked when the version
loads).

Whether batching pays is decided continuously, from the cost of the version's own runs (`RunCost`, which the
warm-up starts), not once: a version batches while a full batch saves more than batching costs, and otherwise runs
each request on its own, concurrently, as an unbatched version does (still measured, so the decision can turn).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from modelyard.serving.domain.model import Signature
from modelyard.serving.domain.ports import ModelRunner, VersionMetrics
from modelyard.serving.domain.tensors import Array


def batchable(signature: Signature) -> bool:
    """Whether every input and output has a variable first (batch) dimension."""
    return all(spec.shape and spec.shape[0] < 0 for spec in (*signature.inputs, *signature.outputs))


def worth_batching(call_s: float, per_row_s: float, rows: int, overhead_s: float) -> bool:
    """Whether batching pays, from the warm-up's measured costs: a lone request (low load) pays the batching
    overhead on top of its call, so the call must cost at least that much; and `rows` requests run as one call
    (high load) must save more than the overhead: the fixed cost of the `rows - 1` calls saved. A model whose rows
    are expensive (an MLP) batches; a model cheaper than the overhead (a small linear model) never does."""
    return call_s >= overhead_s and (rows - 1) * (call_s - per_row_s) > overhead_s


@dataclass(slots=True)
class RunCost:
    """What a version's run costs, measured on every run it makes (the warm-up's measure to start with):
    exponentially weighted averages of a one-row run and of the marginal cost of one more row."""

    call_s: float
    per_row_s: float
    weight: float = 0.05  # about the last 20 runs of each kind

    def observe(self, rows: int, seconds: float) -> None:
        if rows <= 1:
            self.call_s += self.weight * (seconds - self.call_s)
        else:
            per_row = max(seconds - self.call_s, 0.0) / (rows - 1)
            self.per_row_s += self.weight * (per_row - self.per_row_s)


@dataclass(slots=True)
class _Waiting:
    inputs: Mapping[str, Array]
    outputs: Sequence[str]
    rows: int
    queued_at: float
    answer: asyncio.Future[list[Array]]


class Batcher:
    def __init__(
        self,
        runner: ModelRunner,
        metrics: VersionMetrics,
        cost: RunCost,
        *,
        max_batch_rows: int,
        overhead_s: float = 0.0,
        max_delay_s: float = 0.0,
        pool: Executor | None = None,
    ) -> None:
        self.runner = runner
        self.metrics = metrics
        self.cost = cost
        self.max_batch_rows = max_batch_rows
        self.overhead_s = overhead_s
        self.max_delay_s = max_delay_s
        self.pool = pool  # None: run on the event loop (models cheaper than a thread hand-off)
        self._inputs = tuple(spec.name for spec in runner.signature.inputs)
        self._outputs = [spec.name for spec in runner.signature.outputs]
        self._index = {name: i for i, name in enumerate(self._outputs)}
        self._queue: list[_Waiting] = []
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running = False  # a batch (or a lone request) is running or gathering company
        self._last_batch = 1  # requests in the last batch: more than one means load

    @property
    def engaged(self) -> bool:
        """Whether batching pays now, by the measured costs."""
        return worth_batching(self.cost.call_s, self.cost.per_row_s, self.max_batch_rows, self.overhead_s)

    async def submit(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> list[Array]:
        rows = len(next(iter(inputs.values())))
        if not self.engaged:
            return await self._execute(inputs, rows, outputs)
        if self.pool is not None and not self._running and not self._queue:
            return await self._run_alone(inputs, rows, outputs)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="batcher")
        answer: asyncio.Future[list[Array]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(inputs, outputs, rows, time.perf_counter(), answer))
        self._arrived.set()
        return await answer

    async def _run_alone(self, inputs: Mapping[str, Array], rows: int, outputs: Sequence[str]) -> list[Array]:
        """An idle batcher's request: at once, as a batch of one; whoever arrives meanwhile queues."""
        self._running = True
        try:
            results = await self._execute(inputs, rows, outputs)
        finally:
            self._running = False
            self._last_batch = 1
            if self._queue:
                self._arrived.set()
        self.metrics.observe_batch(1, 0.0)
        return results

    async def _execute(self, feed: Mapping[str, Array], rows: int, outputs: Sequence[str]) -> list[Array]:
        """One run, in the pool or inline, its cost measured as the CPU time of the thread that runs it (onnxruntime
        computes in the calling thread with one intra-op thread): wall time would count the wait for a core or for
        the GIL after the run, which grows with load and would turn batching off exactly when it pays most."""

        def timed() -> list[Array]:
            started = time.thread_time()
            results = self.runner.run(feed, outputs)
            self.cost.observe(rows, time.thread_time() - started)
            return results

        if self.pool is None:
            return timed()
        return await asyncio.get_running_loop().run_in_executor(self.pool, timed)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for waiting in self._queue:
            waiting.answer.cancel()

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            if self._running or not self._queue:
                continue
            self._running = True
            try:
                await self._run_batch()
            finally:
                self._running = False
                if self._queue:
                    self._arrived.set()

    async def _run_batch(self) -> None:
        if self.max_delay_s > 0 and self._last_batch > 1:  # under load only: at one in flight, nobody comes
            await self._wait_for_company()
        batch = self._take()
        if not batch:
            return
        self._last_batch = len(batch)
        started = time.perf_counter()
        # A batch of one (most of them at low load) runs on its own arrays: no copy.
        feed = (
            batch[0].inputs
            if len(batch) == 1
            else {name: np.concatenate([w.inputs[name] for w in batch]) for name in self._inputs}
        )
        try:
            results = await self._execute(feed, sum(w.rows for w in batch), self._outputs)
        except Exception as exc:
            for waiting in batch:
                if not waiting.answer.done():
                    waiting.answer.set_exception(exc)
            return
        self.metrics.observe_batch(len(batch), started - batch[0].queued_at)
        self._answer(batch, results)

    async def _wait_for_company(self) -> None:
        """Wait while requests keep coming: each pause at most what a one-row run costs (if nobody came meanwhile,
        running now is cheaper), all together at most `max_delay_s` from the oldest request's arrival. A plain
        sleep per pause: an event wait with a timeout costs a task per pause, more than it saves."""
        deadline = self._queue[0].queued_at + self.max_delay_s if self._queue else 0.0
        while (queued := len(self._queue)) and sum(w.rows for w in self._queue) < self.max_batch_rows:
            pause = min(deadline - time.perf_counter(), self.cost.call_s)
            if pause <= 0:
                return
            await asyncio.sleep(pause)
            if len(self._queue) == queued:
                return

    def _take(self) -> list[_Waiting]:
        """The oldest requests that fit in one batch (always at least one, even if larger on its own)."""
        taken, rows = 0, 0
        for waiting in self._queue:
            if taken and rows + waiting.rows > self.max_batch_rows:
                break
            taken += 1
            rows += waiting.rows
        batch = self._queue[:taken]
        del self._queue[:taken]
        return [w for w in batch if not w.answer.cancelled()]

    def _answer(self, batch: list[_Waiting], results: list[Array]) -> None:
        offset = 0
        for waiting in batch:
            end = offset + waiting.rows
            if not waiting.answer.done():
                waiting.answer.set_result([results[self._index[name]][offset:end] for name in waiting.outputs])
            offset = end
