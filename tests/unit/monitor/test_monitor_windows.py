"""Tumbling event-time windows: W events or T seconds, watermark and late events, deterministic on replay."""

import dataclasses

import numpy as np
import pytest

from modelyard.monitor.domain.policy import WindowPolicy
from modelyard.monitor.domain.windows import Columns, WindowAssembler, WindowId

pytestmark = pytest.mark.unit
POLICY = WindowPolicy(max_events=5, max_seconds=10.0, min_events=1, allowed_lateness_s=2.0)


def batch(*times: float) -> Columns:
    t = np.asarray(times, dtype=np.float64)
    return Columns(
        event_time=t, latency_ms=np.ones_like(t), status=np.zeros(t.size, dtype=np.int32), numeric={"x": t * 2}
    )


def test_count_closes_then_next_part_then_watermark_closes() -> None:
    windows = WindowAssembler(POLICY)
    first = windows.add(batch(0, 1, 2, 3, 4, 5, 6))
    assert [(c.id, c.closed_by, len(c.data)) for c in first.closed] == [(WindowId(0, 0), "count", 5)]
    assert windows.open[0].id == WindowId(0, 1) and windows.open[0].count == 2
    second = windows.add(batch(13))  # watermark 11 passes slot 0's end (10)
    assert [(c.id, c.closed_by, c.data.numeric["x"].tolist()) for c in second.closed] == [
        (WindowId(0, 1), "watermark", [10.0, 12.0])
    ]
    third = windows.add(batch(9.5, 12))  # 9.5 is late: slot 0 is past the watermark
    assert third.late_events == 1 and windows.open[1].count == 2 and not third.closed


def test_replaying_the_same_batches_rebuilds_the_same_windows() -> None:
    rng = np.random.default_rng(0)
    batches = [batch(*np.sort(rng.uniform(i * 4, i * 4 + 6, size=3))) for i in range(10)]

    def closed(assembler: WindowAssembler) -> list[tuple[WindowId, list[float]]]:
        return [(c.id, c.data.event_time.tolist()) for b in batches for c in assembler.add(b).closed]

    assert closed(WindowAssembler(POLICY)) == closed(WindowAssembler(POLICY))


def test_a_quiet_stream_closes_its_last_window_by_the_wall_clock() -> None:
    windows = WindowAssembler(dataclasses.replace(POLICY, idle_flush_s=60.0))
    windows.add(batch(1, 2, 3))  # the latest event at 3: slot 0 (to 10) stays open however long nothing comes
    assert not windows.idle(now=3 + 59.9) and windows.idle(now=3 + 60)
    assert windows.advance(5.0) == [] and windows.watermark == 5.0  # not past the slot's end yet
    (closed,) = windows.advance(3 + 60 - POLICY.allowed_lateness_s)
    assert (closed.id, closed.closed_by, len(closed.data)) == (WindowId(0, 0), "watermark", 3)
    assert windows.advance(0.0) == [] and windows.watermark == 61.0  # never back
    assert not windows.idle(now=1e9)  # nothing open, nothing to flush
    assert windows.add(batch(4)).late_events == 1  # a straggler of the closed slot is late, as after any watermark
    off = WindowAssembler(dataclasses.replace(POLICY, idle_flush_s=0.0))
    off.add(batch(1))
    assert not off.idle(now=1e9)
