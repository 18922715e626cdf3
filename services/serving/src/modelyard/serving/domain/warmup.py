"""Warm-up: run a new version on synthetic inputs before it takes traffic, and measure what a call costs.

The measurement decides how the version executes: a model that answers in less time than a thread hand-off
costs runs inline on the event loop; anything slower runs in a worker pool so the loop keeps serving.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from modelyard.serving.domain.model import Signature
from modelyard.serving.domain.ports import ModelRunner
from modelyard.serving.domain.tensors import DTYPES, Array


@dataclass(frozen=True, slots=True)
class WarmupResult:
    call_s: float  # median time of a one-row call
    per_row_s: float  # marginal cost of one more row, from a `rows`-row call
    rows: int
    total_ms: float


def example_inputs(signature: Signature, rows: int) -> dict[str, Array]:
    """Zeros (empty strings for BYTES) of each input's shape, `rows` for each variable dimension."""
    inputs: dict[str, Array] = {}
    for spec in signature.inputs:
        shape = tuple(rows if dim < 0 else dim for dim in spec.shape)
        if spec.datatype == "BYTES":
            inputs[spec.name] = np.full(shape, "", dtype=np.object_)
        else:
            inputs[spec.name] = np.zeros(shape, dtype=DTYPES[spec.datatype])
    return inputs


def warm_up(runner: ModelRunner, *, calls: int = 20, rows: int = 32) -> WarmupResult:
    """Run `calls` one-row calls and `calls` `rows`-row calls (the first of each also warms caches)."""
    began = time.perf_counter()
    outputs = [spec.name for spec in runner.signature.outputs]
    one, many = example_inputs(runner.signature, 1), example_inputs(runner.signature, rows)
    single = _median_call(runner, one, outputs, calls)
    batch = _median_call(runner, many, outputs, calls)
    per_row = max(batch - single, 0.0) / (rows - 1) if rows > 1 else single
    return WarmupResult(single, per_row, rows, (time.perf_counter() - began) * 1000.0)


def _median_call(runner: ModelRunner, inputs: dict[str, Array], outputs: list[str], calls: int) -> float:
    runner.run(inputs, outputs)
    timings = []
    for _ in range(calls):
        start = time.perf_counter()
        runner.run(inputs, outputs)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)
