"""Tumbling event-time windows that close at W events or when the watermark passes their end, whichever first.

Windows sit on a grid of T seconds (slot = floor(event time / T)); a slot that reaches W events closes and the
slot's later events open its next part. The watermark is the latest event time seen minus the allowed lateness,
advanced once per batch so that the outcome depends only on the order of batches (which Kafka fixes per
partition), never on timing: a replay of the same records rebuilds the same windows. Events of a slot the
watermark has already passed are late: counted, not tested. When the stream goes quiet (no event for
`idle_flush_s` of wall clock), the wall clock stands in for the event that did not come: the watermark moves to
now minus the allowed lateness, so the last window closes and its alarms are raised rather than left pending
(that move is checkpointed like a batch's, so a replay resumes from it).

A window the watermark closes with fewer than `min_events` (a sliver of the time grid, e.g. at a change point, too
small to test) is not closed: it moves into the next open window of the version, which then starts at the sliver's
start (and so spans more than T). Only a window with no open one after it (the last, flushed when the stream went
quiet) closes small, untested. The merge depends only on the order of batches, so a replay makes the same windows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from modelyard.monitor.domain.metrics import FloatArray
from modelyard.monitor.domain.policy import WindowPolicy

StrArray = npt.NDArray[np.str_]


@dataclass(frozen=True, eq=False)
class Columns:
    """Rows of predictions of one model version, column-wise; NaN / "" mark missing feature values."""

    event_time: FloatArray  # seconds since the epoch
    latency_ms: FloatArray
    status: npt.NDArray[np.int32]
    numeric: Mapping[str, FloatArray] = field(default_factory=dict)
    categorical: Mapping[str, StrArray] = field(default_factory=dict)
    schema_violations: npt.NDArray[np.bool_] | None = None  # per row: a profiled feature was absent

    def __len__(self) -> int:
        return int(self.event_time.size)

    def take(self, rows: npt.NDArray[np.int64]) -> Columns:
        return Columns(
            event_time=self.event_time[rows],
            latency_ms=self.latency_ms[rows],
            status=self.status[rows],
            numeric={k: v[rows] for k, v in self.numeric.items()},
            categorical={k: v[rows] for k, v in self.categorical.items()},
            schema_violations=None if self.schema_violations is None else self.schema_violations[rows],
        )

    @classmethod
    def concat(cls, parts: list[Columns]) -> Columns:
        first = parts[0]
        violations = [p.schema_violations for p in parts]
        return cls(
            event_time=np.concatenate([p.event_time for p in parts]),
            latency_ms=np.concatenate([p.latency_ms for p in parts]),
            status=np.concatenate([p.status for p in parts]),
            numeric={k: np.concatenate([p.numeric[k] for p in parts]) for k in first.numeric},
            categorical={k: np.concatenate([p.categorical[k] for p in parts]) for k in first.categorical},
            schema_violations=None if any(v is None for v in violations) else np.concatenate(violations),  # type: ignore[arg-type]
        )


@dataclass(frozen=True, order=True)
class WindowId:
    slot: int
    part: int

    def __str__(self) -> str:
        return f"{self.slot}.{self.part}"


@dataclass
class OpenWindow:
    id: WindowId
    chunks: list[Columns] = field(default_factory=list)
    count: int = 0
    first_slot: int | None = None  # the slot of the earliest sliver merged into it (None: none was)

    def data(self) -> Columns:
        return Columns.concat(self.chunks)

    def absorb(self, sliver: OpenWindow) -> None:
        """Take a sliver's rows (before its own) and its start."""
        self.chunks[:0] = sliver.chunks
        self.count += sliver.count
        self.first_slot = sliver.id.slot if sliver.first_slot is None else sliver.first_slot


@dataclass(frozen=True, eq=False)
class ClosedWindow:
    id: WindowId
    start: float  # slot start, seconds since the epoch
    end: float  # slot end
    data: Columns
    closed_by: str  # "count" or "watermark"

    def duration(self, policy: WindowPolicy) -> float:
        """Event-time seconds the window covered: a count-closed one lasted as long as its events span."""
        if self.closed_by != "count" or len(self.data) == 0:
            return self.end - self.start
        span = float(self.data.event_time.max() - self.data.event_time.min())
        return min(policy.max_seconds, max(span, 1e-3))


@dataclass
class BatchOutcome:
    appended: list[tuple[WindowId, Columns]] = field(default_factory=list)
    sources: list[npt.NDArray[np.int64]] = field(default_factory=list)  # per appended chunk: its rows in the batch
    closed: list[ClosedWindow] = field(default_factory=list)
    late_events: int = 0
    merged: list[tuple[WindowId, WindowId]] = field(default_factory=list)  # (sliver, the window it moved into)


@dataclass
class WindowAssembler:
    """The open windows of one model version. Mutable state, restored from the store on restart."""

    policy: WindowPolicy
    watermark: float = -math.inf
    open: dict[int, OpenWindow] = field(default_factory=dict)  # by slot
    next_part: dict[int, int] = field(default_factory=dict)  # by slot, once a part closed by count

    def add(self, batch: Columns) -> BatchOutcome:
        outcome = BatchOutcome()
        if len(batch) == 0:
            return outcome
        t_max = self.policy.max_seconds
        slots = np.floor(batch.event_time / t_max).astype(np.int64)
        late = (slots + 1) * t_max <= self.watermark
        outcome.late_events = int(late.sum())
        for slot in np.unique(slots[~late]).tolist():
            rows = np.nonzero((slots == slot) & ~late)[0]
            self._fill(int(slot), batch.take(rows), rows, outcome)
        self.advance(float(batch.event_time.max()) - self.policy.allowed_lateness_s, outcome)
        return outcome

    def advance(self, watermark: float, outcome: BatchOutcome | None = None) -> BatchOutcome:
        """Move the watermark up to `watermark` (never back); the windows it passed, closed (into `outcome`, if
        given), but for slivers (below `min_events`), which move into the next open window (`merged`)."""
        outcome = outcome or BatchOutcome()
        self.watermark = max(self.watermark, watermark)
        t_max = self.policy.max_seconds
        for slot in [s for s in sorted(self.open) if (s + 1) * t_max <= self.watermark]:
            window = self.open.get(slot)
            if window is None:
                continue  # a sliver filled it, and it closed
            later = [s for s in self.open if s > slot]
            if window.count >= self.policy.min_events or not later:
                outcome.closed.append(self._close(slot, "watermark"))
                continue
            target = self.open[min(later)]
            target.absorb(self.open.pop(slot))
            outcome.merged.append((window.id, target.id))
            if target.count >= self.policy.max_events:  # what it took filled it
                outcome.closed.append(self._close(target.id.slot, "count"))
                self.next_part[target.id.slot] = target.id.part + 1
        for slot in [s for s in self.next_part if (s + 1) * t_max <= self.watermark]:
            del self.next_part[slot]  # the slot is past: its later events are late, no part will follow
        return outcome

    def idle(self, now: float) -> bool:
        """Open windows, and no event newer than `idle_flush_s` before `now` (wall clock): the stream went quiet."""
        latest = self.watermark + self.policy.allowed_lateness_s
        return bool(self.open) and self.policy.idle_flush_s > 0 and now - latest >= self.policy.idle_flush_s

    def _fill(self, slot: int, rows: Columns, sources: npt.NDArray[np.int64], outcome: BatchOutcome) -> None:
        taken = 0
        while taken < len(rows):
            window = self.open.get(slot)
            if window is None:
                window = self.open[slot] = OpenWindow(WindowId(slot, self.next_part.get(slot, 0)))
            room = self.policy.max_events - window.count
            taking = np.arange(taken, min(taken + room, len(rows)))
            chunk = rows.take(taking)
            window.chunks.append(chunk)
            window.count += len(chunk)
            outcome.appended.append((window.id, chunk))
            outcome.sources.append(sources[taking])
            taken += len(chunk)
            if window.count >= self.policy.max_events:
                outcome.closed.append(self._close(slot, "count"))
                self.next_part[slot] = window.id.part + 1

    def _close(self, slot: int, reason: str) -> ClosedWindow:
        window = self.open.pop(slot)
        t_max = self.policy.max_seconds
        first = slot if window.first_slot is None else window.first_slot
        return ClosedWindow(window.id, first * t_max, (slot + 1) * t_max, window.data(), reason)
