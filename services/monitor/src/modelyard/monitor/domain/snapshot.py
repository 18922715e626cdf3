"""Retraining snapshots: the recent labelled traffic of a model as a dataset, when an incident asks for retraining.

While the retraining policy names some signal, every prediction that waits for its label keeps its input features
(as JSON, keyed by their registered names, from the version's reference profile); a joined label keeps them too.
When an incident of such a signal opens, the newest labelled predictions of the model (all versions, at most
`max_rows`) become a CSV dataset: one column per feature, the label column, then what the model said and when:

    mean radius,...,target,prediction,model_version,event_time

A model that drifted is retrained on what it sees now; the columns after the label are lineage (a training script
ignores them), and the windows the rows fell into are the snapshot's lineage in `RetrainingSuggested`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modelyard.monitor.domain.errors import InvalidArgument
from modelyard.monitor.domain.incidents import Signal
from modelyard.monitor.domain.performance import LabelledPrediction
from modelyard.monitor.domain.policy import MonitorPolicy
from modelyard.monitor.domain.profile import ReferenceProfile, Role
from modelyard.monitor.domain.windows import Columns

CSV = "text/csv"
LINEAGE_COLUMNS = ("prediction", "model_version", "event_time")


@dataclass(frozen=True)
class SnapshotRequest:
    """An open incident that asks for a snapshot (its signal is one the retraining policy names)."""

    incident_id: str
    model_name: str
    model_version: int
    signal: Signal


@dataclass(frozen=True)
class Snapshot:
    request: SnapshotRequest
    data: bytes
    columns: tuple[str, ...]
    label_column: str
    rows: int
    windows: tuple[str, ...]  # "<version>/<slot>" on the window grid, oldest first
    first_event_time: float
    last_event_time: float
    media_type: str = CSV

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


def feature_rows(columns: Columns, profile: ReferenceProfile) -> list[str]:
    """Each row's input features as JSON keyed by registered feature name (missing values as null)."""
    numeric = [(f.name, columns.numeric[f.name]) for f in profile.numeric_features(Role.INPUT)]
    categorical = [(f.name, columns.categorical[f.name]) for f in profile.categorical_features(Role.INPUT)]
    lists: list[tuple[str, list[float | str | None]]] = [
        (name, [None if math.isnan(v) else v for v in values.tolist()]) for name, values in numeric
    ]
    lists += [(name, [v or None for v in values.tolist()]) for name, values in categorical]
    names = [name for name, _ in lists]
    return [json.dumps(dict(zip(names, row, strict=True))) for row in zip(*(v for _, v in lists), strict=True)]


def build_snapshot(
    request: SnapshotRequest, labelled: Sequence[LabelledPrediction], policy: MonitorPolicy
) -> Snapshot | None:
    """The snapshot of `labelled` (the model's newest labelled predictions that kept their features), oldest
    first; None while there are fewer than the policy's minimum."""
    retraining = policy.retraining
    kept = sorted((x for x in labelled if x.prediction.features is not None), key=lambda x: x.prediction.event_time)[
        -retraining.max_rows :
    ]
    if len(kept) < retraining.min_rows or not kept:
        return None
    features = [json.loads(x.prediction.features or "{}") for x in kept]
    names = list(dict.fromkeys(name for row in features for name in row))
    label = retraining.label_column
    if label in names or label in LINEAGE_COLUMNS:
        raise InvalidArgument(f"the snapshot's label column {label!r} is also a feature or lineage column")
    columns = (*names, label, *LINEAGE_COLUMNS)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for x, row in zip(kept, features, strict=True):
        p = x.prediction
        truth = x.truth_label if x.truth_label is not None else x.truth_value
        predicted = p.label if p.label is not None else p.value
        writer.writerow(
            [*(_cell(row.get(n)) for n in names), _cell(truth), _cell(predicted), p.model_version, p.event_time]
        )
    slots = np.floor(np.array([x.prediction.event_time for x in kept]) / policy.window.max_seconds).astype(np.int64)
    windows = dict.fromkeys(
        f"{x.prediction.model_version}/{slot}" for x, slot in zip(kept, slots.tolist(), strict=True)
    )
    return Snapshot(
        request=request,
        data=buffer.getvalue().encode(),
        columns=columns,
        label_column=label,
        rows=len(kept),
        windows=tuple(windows),
        first_event_time=kept[0].prediction.event_time,
        last_event_time=kept[-1].prediction.event_time,
    )


def _cell(value: object) -> object:
    return "" if value is None else value
