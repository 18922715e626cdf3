"""The prediction log: what each prediction of the stream was, by request id, for provenance (`modelyard trace`).

An entry per prediction (version, digest, plan revision, event time, window) points at its row in a block of the
tensors of the batch it came in, stored as the decoder produced them (flattened columns), so that logging costs
one serialisation per batch rather than per prediction. Bounded twice: entries older than the retention go, and
beyond the row cap the oldest go first (the store prunes both, and the blocks no entry points at, in its
housekeeping). A request id seen before (a retried inference, or the shadow copy of a request) keeps its first
entry, which is the answer the caller got: the shadow's copy is recorded after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np
import numpy.typing as npt

from modelyard.errors import ErrorKind
from modelyard.monitor.domain.errors import MonitorError
from modelyard.monitor.domain.evaluation import WindowReport
from modelyard.monitor.domain.profile import Role
from modelyard.monitor.domain.records import PredictionRows, TensorRows
from modelyard.monitor.domain.views import IncidentView
from modelyard.monitor.domain.windows import WindowId

Values = list[float] | list[str]
Tensors = Mapping[tuple[Role, str], TensorRows]
# One entry as the hot path makes it: request id, model, version, digest, plan revision, event time, window id
# ("" when the prediction came too late for any window), its row in the batch's tensors.
LogEntry = tuple[str, str, int, str, int, float, str, int]


@dataclass(frozen=True)
class PredictionLogPolicy:
    retention_s: float = 7 * 24 * 3600.0
    max_rows: int = 1_000_000  # 0: no log


DEFAULT_PREDICTION_LOG = PredictionLogPolicy()


class PredictionNotFound(MonitorError):
    """No logged prediction has the request id: never seen by the monitor, or pruned."""

    kind = ErrorKind.NOT_FOUND


@dataclass(frozen=True, eq=False)
class LoggedBatch:
    """The entries of one batch's predictions of a version, and the tensors their rows index."""

    tensors: Tensors
    entries: list[LogEntry]


@dataclass(frozen=True)
class LoggedPrediction:
    request_id: str
    model_name: str
    model_version: int
    digest: str
    plan_revision: int
    event_time: float  # seconds since the epoch
    window: str  # the window id ("slot.part"), "" when late
    inputs: Mapping[str, Values]
    outputs: Mapping[str, Values]
    truth: str | float | None  # joined by feedback, once it arrived
    logged_at: float


@dataclass(frozen=True)
class PredictionTrace:
    """A logged prediction with the window it fell into and the incidents of its version open at its time."""

    prediction: LoggedPrediction
    window_start: float | None  # of its window's slot; None when late
    window_end: float | None
    window: WindowReport | None  # once the window closed
    incidents: Sequence[IncidentView] = field(default_factory=tuple)


def logged_batch(rows: PredictionRows, windows: Sequence[tuple[WindowId, npt.NDArray[np.int64]]]) -> LoggedBatch | None:
    """The log entries of the records of `rows` that carry a request id (None: none does); `windows` says which
    rows each window took. Built by zip and repeat, not a loop per record: this runs for every prediction."""
    labels = [""] + [str(window) for window, _ in windows]
    window_of = np.zeros(len(rows), dtype=np.int64)  # index into labels; 0: no window (late)
    for i, (_, taken) in enumerate(windows, start=1):
        window_of[taken] = i
    entries: list[LogEntry] = list(
        zip(
            rows.request_ids,
            repeat(rows.model_name),
            repeat(rows.model_version),
            repeat(rows.digest),
            rows.plan_revisions.tolist(),
            rows.event_time.tolist(),
            [labels[i] for i in window_of.tolist()],
            range(len(rows)),
        )
    )
    if not all(rows.request_ids):
        entries = [entry for entry in entries if entry[0]]
    return LoggedBatch(rows.tensors, entries) if entries else None


def record_values(tensors: Tensors, row: int) -> tuple[dict[str, Values], dict[str, Values]]:
    """One record's inputs and outputs, each tensor's values as it sent them, from the batch's columns (a record that
    lacks a tensor holds no elements of it)."""
    found: dict[Role, dict[str, Values]] = {Role.INPUT: {}, Role.OUTPUT: {}}
    for (role, name), tensor in tensors.items():
        count = int(tensor.counts[row])
        if count:
            start = int(tensor.counts[:row].sum())
            found[role][name] = tensor.values[start : start + count].tolist()
    return found[Role.INPUT], found[Role.OUTPUT]
