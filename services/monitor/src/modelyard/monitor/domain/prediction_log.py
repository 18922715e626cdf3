"""The prediction log: what each prediction of the stream was, by request id, for provenance (`modelyard trace`).

Bounded twice: entries older than the retention go, and beyond the row cap the oldest go first (the store prunes
both in its housekeeping). A request id seen before (a retried inference, or the shadow copy of a request) keeps
its first entry, which is the answer the caller got: the shadow's copy is recorded after it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from modelyard.errors import ErrorKind
from modelyard.monitor.domain.errors import MonitorError
from modelyard.monitor.domain.evaluation import WindowReport
from modelyard.monitor.domain.profile import Role
from modelyard.monitor.domain.records import PredictionRows
from modelyard.monitor.domain.views import IncidentView, json_safe
from modelyard.monitor.domain.windows import WindowId

Values = list[float] | list[str]
# One log entry as the hot path makes it: request id, model, version, digest, plan revision, event time, window id
# ("" when the prediction came too late for any window), the tensors as JSON.
LogRow = tuple[str, str, int, str, int, float, str, str]


@dataclass(frozen=True)
class PredictionLogPolicy:
    retention_s: float = 7 * 24 * 3600.0
    max_rows: int = 1_000_000  # 0: no log


DEFAULT_PREDICTION_LOG = PredictionLogPolicy()


class PredictionNotFound(MonitorError):
    """No logged prediction has the request id: never seen by the monitor, or pruned."""

    kind = ErrorKind.NOT_FOUND


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


def log_rows(rows: PredictionRows, windows: Sequence[tuple[WindowId, Sequence[int]]]) -> list[LogRow]:
    """Entries for the records of `rows` that carry a request id; `windows` says which rows each window took."""
    window_of = [""] * len(rows)
    for window, taken in windows:
        label = str(window)
        for row in taken:
            window_of[row] = label
    inputs, outputs = _per_record(rows, Role.INPUT), _per_record(rows, Role.OUTPUT)
    revisions = rows.plan_revisions or [0] * len(rows)
    return [
        (
            request_id,
            rows.model_name,
            rows.model_version,
            rows.digest,
            revisions[i],
            rows.event_time[i],
            window_of[i],
            json.dumps(json_safe({"inputs": inputs[i], "outputs": outputs[i]}), separators=(",", ":")),
        )
        for i, request_id in enumerate(rows.request_ids)
        if request_id
    ]


def tensors_of(text: str) -> tuple[dict[str, Values], dict[str, Values]]:
    """The inputs and outputs of a stored entry (NaN stored as null, read back as NaN)."""
    document = json.loads(text)
    return (
        {k: _nan(v) for k, v in document["inputs"].items()},
        {k: _nan(v) for k, v in document["outputs"].items()},
    )


def _per_record(rows: PredictionRows, role: Role) -> list[dict[str, Values]]:
    """Each record's values of every tensor of `role`, from the flattened columns."""
    records: list[dict[str, Values]] = [{} for _ in range(len(rows))]
    for (tensor_role, name), tensor in rows.tensors.items():
        if tensor_role is not role:
            continue
        numbers = strings = 0
        for entry, row in enumerate(tensor.rows):
            n, s = tensor.number_widths[entry], tensor.string_widths[entry]
            if n:
                records[row][name] = tensor.numbers[numbers : numbers + n]
            else:
                records[row][name] = tensor.strings[strings : strings + s]
            numbers += n
            strings += s
    return records


def _nan(values: list[float | str | None]) -> Values:
    return [float("nan") if v is None else v for v in values]  # type: ignore[return-value]
