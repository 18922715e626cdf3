"""Seeded prediction streams, reference files and settings for the monitor's tests and its benchmark.

Produces what serving would: PredictionBatch events of a synthetic tabular model (`simulation.TabularGenerator`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from modelyard.contracts.events.v1 import common_pb2, serving_events_pb2
from modelyard.events import columns
from modelyard.events.envelope import Event, Position
from modelyard.events.topics import MONITOR_FEEDBACK, SERVING_PREDICTIONS
from modelyard.monitor.config import MonitorSettings
from modelyard.monitor.domain.ports import Consumed
from modelyard.monitor.domain.records import Feedback, PredictionRows
from modelyard.monitor.domain.simulation import Shift, TabularGenerator
from modelyard.monitor.entrypoints.consumer import rows_by_version
from modelyard.testing.signing import MONITOR_KEY, seed_hex

GENERATOR = TabularGenerator()
WINDOW = 500


def write_reference(
    directory: Path, model: str, version: int, rows: int = 5000, seed: int = 0, generator: TabularGenerator = GENERATOR
) -> None:
    columns = generator.columns(np.random.default_rng(seed), rows)
    (directory / model).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({k: pa.array(v) for k, v in columns.items()}), directory / model / f"{version}.parquet")


def write_classifier_reference(
    directory: Path, model: str, version: int, accuracy: float, rows: int = 5000, seed: int = 0
) -> None:
    """A reference with the classifier's answers (`output:label`, `output:probabilities[1]`) and the truth, wrong on
    a share 1 - `accuracy` of the rows: what the performance baseline is measured on."""
    rng = np.random.default_rng(seed)
    columns = GENERATOR.columns(rng, rows)
    score = np.asarray(columns.pop("output:score"), dtype=np.float64)
    predicted = (score > 0.5).astype(np.int64)
    truth = np.where(rng.random(rows) >= accuracy, 1 - predicted, predicted)
    columns |= {"output:label": predicted, "output:probabilities[1]": score, "truth:label": truth}
    (directory / model).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({k: pa.array(v) for k, v in columns.items()}), directory / model / f"{version}.parquet")


def prediction_events(
    model: str,
    version: int,
    n: int,
    *,
    seed: int,
    shift: Shift | None = None,
    batch: int = 100,
    start: float = 1.7e9,
    generator: TabularGenerator = GENERATOR,
    classifier: bool = False,
) -> list[Event]:
    """`n` predictions of `model` in PredictionBatch events of `batch` records, one millisecond apart; a
    `classifier`'s records answer with `label` and `probabilities` (its class is score > 0.5), others `score`."""
    columns = generator.columns(np.random.default_rng(seed), n, shift or Shift())
    x = np.stack([np.asarray(columns[f"x[{j}]"], dtype=np.float64) for j in range(generator.n_numeric)], axis=1)
    score = np.asarray(columns["output:score"], dtype=np.float64)
    inputs = {"x": x[:, None, :], "segment": np.asarray(columns["segment"]).astype(str)[:, None, None]}
    if classifier:
        outputs = {"label": (score > 0.5).astype(np.float64)[:, None], "probabilities": np.stack([1 - score, score], 1)}
    else:
        outputs = {"score": score[:, None, None]}
    times_ns = (start * 1e9 + np.arange(n) * 1e6).astype(np.int64)
    events = []
    for i in range(0, n, batch):
        part = slice(i, i + batch)
        payload = prediction_batch(
            common_pb2.ModelVersionRef(model_name=model, version=version, digest="sha256:" + "0" * 64),
            [uuid.uuid4().hex for _ in range(len(times_ns[part]))],
            times_ns[part],
            {name: array[part] for name, array in inputs.items()},
            {name: array[part] for name, array in outputs.items()},
            latency_ms=4.0 + np.arange(i, i + len(times_ns[part])) % 7,
        )
        events.append(Event.new(model, payload, "serving"))
    return events


def prediction_batch(
    version: common_pb2.ModelVersionRef,
    request_ids: Sequence[str],
    times_ns: npt.ArrayLike,
    inputs: Mapping[str, npt.NDArray[np.generic]],
    outputs: Mapping[str, npt.NDArray[np.generic]],
    *,
    latency_ms: npt.ArrayLike = 3.0,
    status: npt.ArrayLike = 0,
    plan_revisions: Sequence[int] = (),
) -> serving_events_pb2.PredictionBatch:
    """A PredictionBatch of one version whose tensors are records-first arrays (record i holds `array[i]`)."""
    n = len(request_ids)
    batch = serving_events_pb2.PredictionBatch(
        model_name=version.model_name,
        version=version,
        request_ids=request_ids,
        inputs=[columns.write_rows(name, array) for name, array in inputs.items()],
        outputs=[columns.write_rows(name, array) for name, array in outputs.items()],
    )
    shape = (n,)  # a scalar latency or status is every record's
    return columns.set_per_record(
        batch, times_ns, np.broadcast_to(latency_ms, shape), np.broadcast_to(status, shape), plan_revisions
    )


def answers(batch: serving_events_pb2.PredictionBatch, output: int = 0) -> list[tuple[str, float]]:
    """Each record's request id and the first element of its `output`-th output tensor."""
    records = columns.read_batch(batch)
    column = records.outputs[output]
    starts = np.concatenate(([0], np.cumsum(column.counts)[:-1]))
    return list(zip(records.request_ids, column.values[starts].astype(np.float64).tolist(), strict=True))


def consumed(offset: int, batch: serving_events_pb2.PredictionBatch) -> Consumed[Sequence[PredictionRows]]:
    """A prediction batch as the consumer hands it to the monitor, read at `offset` of partition 0."""
    return Consumed(Position(SERVING_PREDICTIONS.name, 0, offset), rows_by_version(batch, 0.0))


def consumed_feedback(offset: int, request_id: str, truth: str | float) -> Consumed[Feedback]:
    return Consumed(Position(MONITOR_FEEDBACK.name, 0, offset), Feedback([request_id], [truth]))  # type: ignore[arg-type]


def setting_values(bootstrap: str, data_dir: Path) -> dict[str, str]:
    """Settings of a monitor under test, as MonitorSettings fields (and, upper-cased, environment variables)."""
    return {
        "kafka_bootstrap": bootstrap,
        "data_dir": str(data_dir),
        "grpc_port": "0",
        "http_port": "0",
        "consumer_group": f"monitor-{uuid.uuid4().hex[:8]}",
        "consumer_session_timeout_ms": "2000",
        "window_max_events": str(WINDOW),
        "window_min_events": "200",
        "window_max_seconds": "3600",
        "shutdown_grace_s": "2",
        # A test's traffic follows its reference at once (a deployment prefetches it when the version is ready,
        # long before traffic); on a loaded machine the profile's child process may take longer than the default.
        "reference_wait_s": "60",
        "event_signing_key": seed_hex(MONITOR_KEY),
    }


def settings(bootstrap: str, data_dir: Path) -> MonitorSettings:
    return MonitorSettings.model_validate(setting_values(bootstrap, data_dir))


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0, every_s: float = 0.05) -> None:
    """Poll `condition` every `every_s` until it holds; TimeoutError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(every_s)
