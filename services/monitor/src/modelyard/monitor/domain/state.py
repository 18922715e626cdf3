"""Everything the monitor remembers about one model version between records, and its JSON form.

The open windows' rows are not in the JSON: they are stored as chunks, one per batch, so a checkpoint writes only
what the batch added. Restoring puts the chunks back into the windows named here.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from modelyard.monitor.domain.incidents import IncidentBook, IncidentKey, Severity, Signal, Tracker
from modelyard.monitor.domain.metrics import FloatArray
from modelyard.monitor.domain.policy import MonitorPolicy
from modelyard.monitor.domain.sequential import CusumState
from modelyard.monitor.domain.windows import Columns, OpenWindow, WindowAssembler, WindowId


@dataclass(frozen=True)
class LabelWindow:
    """The labels joined since the last label window closed: how many, their error sum, their predictions' times."""

    n: int = 0
    error_sum: float = 0.0
    first: float = math.inf
    last: float = -math.inf

    def plus(self, errors: FloatArray, times: FloatArray) -> LabelWindow:
        """This window with more labels' errors and their predictions' event times (non-empty)."""
        return LabelWindow(
            self.n + int(errors.size),
            self.error_sum + float(errors.sum()),
            min(self.first, float(times.min())),
            max(self.last, float(times.max())),
        )


@dataclass
class VersionState:
    model_name: str
    model_version: int
    assembler: WindowAssembler
    book: IncidentBook
    cusum: dict[str, CusumState] = field(default_factory=dict)
    records_seen: int = 0
    late_records: int = 0
    windows_closed: int = 0
    digest: str = ""  # of the version's artifact, as serving reported it
    records_per_second: float = 0.0  # in event time, over the latest closed window
    error_cusum: float = 0.0  # the performance CUSUM on the per-example error stream (degradation.py)
    labels: LabelWindow = field(default_factory=LabelWindow)  # the label window filling now
    label_windows: int = 0  # label windows closed so far
    # The labels since the error CUSUM last stood at zero (its estimate of the change point): what escalates an
    # open performance incident, with more labels than the window that crossed.
    since_change: LabelWindow = field(default_factory=LabelWindow)

    @classmethod
    def new(cls, model_name: str, model_version: int, policy: MonitorPolicy) -> VersionState:
        return cls(model_name, model_version, WindowAssembler(policy.window), IncidentBook(policy.alarm))

    def to_json(self) -> str:
        a = self.assembler
        document: dict[str, Any] = {
            "watermark": None if math.isinf(a.watermark) else a.watermark,
            # [slot, part, count], and the first slot of the slivers merged into it, if any.
            "open": [
                [w.id.slot, w.id.part, w.count, *([] if w.first_slot is None else [w.first_slot])]
                for w in a.open.values()
            ],
            "next_part": [[slot, part] for slot, part in a.next_part.items()],
            "cusum": {name: [s.upper, s.lower] for name, s in self.cusum.items()},
            "trackers": [
                {
                    "signal": key.signal.value,
                    "feature": key.feature,
                    "recent": list(t.recent),
                    "incident_id": t.incident_id,
                    "severity": int(t.severity),
                    "clean_streak": t.clean_streak,
                }
                for key, t in sorted(self.book.trackers.items())
            ],
            "records_seen": self.records_seen,
            "late_records": self.late_records,
            "windows_closed": self.windows_closed,
            "digest": self.digest,
            "records_per_second": self.records_per_second,
            "error_cusum": self.error_cusum,
            "labels": _label_window_json(self.labels),
            "since_change": _label_window_json(self.since_change),
            "label_windows": self.label_windows,
        }
        return json.dumps(document, sort_keys=True)

    @classmethod
    def from_json(
        cls,
        model_name: str,
        model_version: int,
        text: str,
        chunks: list[tuple[int, int, Columns]],
        policy: MonitorPolicy,
    ) -> VersionState:
        doc = json.loads(text)
        assembler = WindowAssembler(policy.window)
        assembler.watermark = -math.inf if doc["watermark"] is None else float(doc["watermark"])
        for slot, part, count, *first in doc["open"]:
            assembler.open[slot] = OpenWindow(WindowId(slot, part), count=count, first_slot=(first or [None])[0])
        for slot, part, chunk in chunks:
            window = assembler.open.get(slot)
            if window is not None and window.id.part == part:
                window.chunks.append(chunk)
        assembler.next_part = {slot: part for slot, part in doc["next_part"]}
        trackers = {
            IncidentKey(model_name, model_version, Signal(t["signal"]), t["feature"]): Tracker(
                deque(t["recent"], maxlen=policy.alarm.open_within),
                t["incident_id"],
                Severity(t["severity"]),
                t["clean_streak"],
            )
            for t in doc["trackers"]
        }
        return cls(
            model_name,
            model_version,
            assembler,
            IncidentBook(policy.alarm, trackers),
            {name: CusumState(u, low) for name, (u, low) in doc["cusum"].items()},
            doc["records_seen"],
            doc["late_records"],
            doc["windows_closed"],
            doc["digest"],
            doc["records_per_second"],
            _error_cusum(doc["error_cusum"]),
            _label_window(doc.get("labels")),
            doc.get("label_windows", 0),
            _label_window(doc.get("since_change")),
        )


def _label_window_json(w: LabelWindow) -> list[float | None]:
    return [w.n, w.error_sum, *(v if math.isfinite(v) else None for v in (w.first, w.last))]


def _error_cusum(stored: float | list[float]) -> float:
    # States written before the error CUSUM was one-sided keep [upper, lower].
    return float(stored[0] if isinstance(stored, list) else stored)


def _label_window(stored: list[float | None] | None) -> LabelWindow:
    if stored is None:
        return LabelWindow()
    n, error_sum, first, last = stored
    return LabelWindow(
        int(n or 0), float(error_sum or 0.0), math.inf if first is None else first, -math.inf if last is None else last
    )
