"""Dynamic batching: concurrent requests share runs, every caller gets its own rows back, failures reach all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from modelyard.serving.domain.batching import Batcher, RunCost, batchable, worth_batching
from modelyard.serving.domain.model import Signature, TensorSpec
from modelyard.serving.domain.ports import NoMetrics
from modelyard.serving.domain.tensors import Array

pytestmark = pytest.mark.unit

SIGNATURE = Signature(
    (TensorSpec("x", "FP32", (-1, 2)),), (TensorSpec("sum", "FP32", (-1,)), TensorSpec("neg", "FP32", (-1, 2)))
)


class RecordingMetrics(NoMetrics):
    def __init__(self) -> None:
        self.batches: list[int] = []

    def observe_batch(self, size: int, queue_s: float) -> None:
        self.batches.append(size)


class SumRunner:
    def __init__(self) -> None:
        self.batches: list[int] = []

    @property
    def signature(self) -> Signature:
        return SIGNATURE

    def run(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> list[Array]:
        x = np.asarray(inputs["x"])
        if (x < 0).any():
            raise ValueError("negative input")
        self.batches.append(len(x))
        computed = {"sum": x.sum(axis=1), "neg": -x}
        return [computed[name] for name in outputs]  # the requested outputs, in order, as the protocol says

    def close(self) -> None:
        pass


def expensive() -> RunCost:
    """Measured costs that make batching pay: a 1 ms call, nearly all of it fixed."""
    return RunCost(call_s=1e-3, per_row_s=1e-6)


def rows(value: float, count: int = 1) -> dict[str, Array]:
    return {"x": np.full((count, 2), value, np.float32)}


@pytest.mark.parametrize("pool", [None, ThreadPoolExecutor(1)], ids=["inline", "pool"])
async def test_concurrent_requests_share_runs_and_get_their_own_rows(pool: ThreadPoolExecutor | None) -> None:
    runner = SumRunner()
    batcher = Batcher(runner, NoMetrics(), expensive(), max_batch_rows=8, pool=pool)
    answers = await asyncio.gather(*(batcher.submit(rows(i, 1 + i % 2), ["sum"]) for i in range(20)))
    batcher.close()

    for i, (total,) in enumerate(answers):
        assert total.tolist() == [2.0 * i] * (1 + i % 2)
    assert sum(runner.batches) == sum(1 + i % 2 for i in range(20))
    assert len(runner.batches) < 20 and max(runner.batches) <= 8


async def test_requested_outputs_in_the_requested_order() -> None:
    batcher = Batcher(SumRunner(), NoMetrics(), expensive(), max_batch_rows=8)
    neg, total = await batcher.submit(rows(1.0), ["neg", "sum"])
    batcher.close()
    assert (neg.tolist(), total.tolist()) == ([[-1.0, -1.0]], [2.0])


async def test_a_failed_run_fails_every_request_of_its_batch_only() -> None:
    batcher = Batcher(SumRunner(), NoMetrics(), expensive(), max_batch_rows=2)
    results = await asyncio.gather(
        batcher.submit(rows(-1.0), ["sum"]),
        batcher.submit(rows(1.0), ["sum"]),
        batcher.submit(rows(3.0), ["sum"]),
        return_exceptions=True,
    )
    batcher.close()
    assert isinstance(results[0], ValueError) and isinstance(results[1], ValueError)
    assert results[2][0].tolist() == [6.0]  # type: ignore[index]


async def test_queue_delay_waits_for_company_under_load_only() -> None:
    runner = SumRunner()
    slow = RunCost(call_s=0.05, per_row_s=1e-6)  # a 50 ms run: worth waiting 10 ms for company
    batcher = Batcher(runner, NoMetrics(), slow, max_batch_rows=4, max_delay_s=0.2)
    # One in flight: nobody comes, so nobody waits.
    await batcher.submit(rows(1.0), ["sum"])
    await batcher.submit(rows(1.0), ["sum"])
    assert runner.batches == [1, 1]
    # Load: a batch had company, so the next one waits for more (up to the delay).
    await asyncio.gather(batcher.submit(rows(1.0), ["sum"]), batcher.submit(rows(1.0), ["sum"]))
    first = asyncio.create_task(batcher.submit(rows(1.0), ["sum"]))
    await asyncio.sleep(0.01)
    await asyncio.gather(first, batcher.submit(rows(2.0), ["sum"]))
    # Nobody within a run's cost: the batch goes without the rest of the delay.
    slow.call_s = 0.005
    await asyncio.gather(batcher.submit(rows(1.0), ["sum"]), batcher.submit(rows(1.0), ["sum"]))
    first = asyncio.create_task(batcher.submit(rows(1.0), ["sum"]))
    await asyncio.sleep(0.05)
    await asyncio.gather(first, batcher.submit(rows(2.0), ["sum"]))
    batcher.close()
    assert runner.batches == [1, 1, 2, 2, 2, 1, 1]


class SlowRunner(SumRunner):
    """A run that takes `seconds` in the pool thread."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def run(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> list[Array]:
        time.sleep(self.seconds)
        return super().run(inputs, outputs)


async def test_a_lone_request_runs_at_once_without_the_queue_and_others_batch_behind_it() -> None:
    runner = SlowRunner(0.02)
    metrics = RecordingMetrics()
    batcher = Batcher(runner, metrics, expensive(), max_batch_rows=8, max_delay_s=1.0, pool=ThreadPoolExecutor(1))
    began = time.perf_counter()
    (alone,) = await batcher.submit(rows(1.0), ["sum"])
    assert time.perf_counter() - began < 0.5  # the 1 s delay never applies at one in flight
    assert alone.tolist() == [2.0] and batcher._task is None  # no queue, no batcher task
    answers = await asyncio.gather(*(batcher.submit(rows(i), ["sum"]) for i in range(5)))
    batcher.close()
    assert [a[0].tolist() for a in answers] == [[2.0 * i] for i in range(5)]
    assert runner.batches == [1, 1, 4]  # the first of the five ran at once; the four behind it, together
    assert metrics.batches == [1, 1, 4]


async def test_batching_follows_the_measured_cost() -> None:
    """Runs that turn out cheap (no fixed cost to share) stop batching; the decision is not the warm-up's."""
    runner = SumRunner()
    cost = expensive()
    batcher = Batcher(runner, NoMetrics(), cost, max_batch_rows=8, overhead_s=50e-6)
    assert batcher.engaged
    for _ in range(200):
        cost.observe(1, 10e-6)  # a one-row run now costs 10 us, less than batching does
    assert not batcher.engaged
    await asyncio.gather(*(batcher.submit(rows(1.0), ["sum"]) for _ in range(6)))
    assert runner.batches == [1] * 6  # each request on its own, measured still
    assert cost.call_s < 50e-6
    for _ in range(200):
        cost.observe(1, 900e-6)
        cost.observe(32, 900e-6 + 31 * 5e-6)
    assert batcher.engaged and cost.per_row_s == pytest.approx(5e-6, rel=0.05)
    batcher.close()


def test_only_models_with_a_batch_dimension_everywhere_are_batchable() -> None:
    assert batchable(SIGNATURE)
    fixed = Signature((TensorSpec("x", "FP32", (1, 2)),), SIGNATURE.outputs)
    assert not batchable(fixed)


@pytest.mark.parametrize(
    ("call_us", "per_row_us", "batched"),
    [
        (900.0, 500.0, True),  # an MLP: rows are expensive, yet 31 saved calls are worth far more than the overhead
        (20.0, 0.5, False),  # a small linear model: a lone request would pay more for batching than for its call
        (400.0, 399.0, False),  # no fixed cost per call: nothing to share
    ],
)
def test_batching_is_decided_from_measured_costs(call_us: float, per_row_us: float, batched: bool) -> None:
    assert worth_batching(call_us * 1e-6, per_row_us * 1e-6, 32, 50e-6) is batched


async def test_a_batch_of_one_runs_on_the_requests_own_arrays() -> None:
    seen: list[Array] = []

    class Seeing(SumRunner):
        def run(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> list[Array]:
            seen.append(inputs["x"])
            return super().run(inputs, outputs)

    batcher = Batcher(Seeing(), NoMetrics(), expensive(), max_batch_rows=8)  # inline: even a lone request queues
    request = rows(3.0, 2)
    (total,) = await batcher.submit(request, ["sum"])
    batcher.close()
    assert seen[-1] is request["x"]  # not a concatenated copy
    assert total.tolist() == [6.0, 6.0]
