"""The prediction log: what each prediction of the stream was, by request id, for provenance (`modelyard trace`).

A batch's predictions of a version are logged together: their request ids, event times, plan revisions and
windows, with the batch's tensors as the decoder produced them (flattened columns), so that logging costs one
serialisation per batch rather than per prediction; the store indexes each request id apart, to find its batch.
Bounded twice: entries older than the retention go, and beyond the row cap the oldest go first (the store prunes
both in its housekeeping, with the batches no entry is left of). A request id seen before (a retried inference, or
the shadow copy of a request) keeps its first entry, which is the answer the caller got: the shadow's copy is
recorded after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
    """One batch's predictions of a version, a value per record (in the order of the tensors' records): its
    request id ("" for none: not logged), event time, plan revision and window id ("" when late)."""

    model_name: str
    model_version: int
    digest: str
    tensors: Tensors
    request_ids: list[str]
    event_times: list[float]
    plan_revisions: list[int]
    windows: list[str]


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
    """The log of the records of `rows` (None: none carries a request id); `windows` says which rows each window
    took. Whole columns, no loop per record: this runs for every prediction."""
    if not any(rows.request_ids):
        return None
    labels = [""] + [str(window) for window, _ in windows]
    window_of = np.zeros(len(rows), dtype=np.int64)  # index into labels; 0: no window (late)
    for i, (_, taken) in enumerate(windows, start=1):
        window_of[taken] = i
    return LoggedBatch(
        rows.model_name,
        rows.model_version,
        rows.digest,
        rows.tensors,
        list(rows.request_ids),
        rows.event_time.tolist(),
        rows.plan_revisions.tolist(),
        [labels[i] for i in window_of.tolist()],
    )


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
