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
    assert windows.advance(5.0).closed == [] and windows.watermark == 5.0  # not past the slot's end yet
    (closed,) = windows.advance(3 + 60 - POLICY.allowed_lateness_s).closed
    assert (closed.id, closed.closed_by, len(closed.data)) == (WindowId(0, 0), "watermark", 3)
    assert windows.advance(0.0).closed == [] and windows.watermark == 61.0  # never back
    assert not windows.idle(now=1e9)  # nothing open, nothing to flush
    assert windows.add(batch(4)).late_events == 1  # a straggler of the closed slot is late, as after any watermark
    off = WindowAssembler(dataclasses.replace(POLICY, idle_flush_s=0.0))
    off.add(batch(1))
    assert not off.idle(now=1e9)


SLIVERS = dataclasses.replace(POLICY, max_events=8, min_events=3)


def test_a_sliver_moves_into_the_next_open_window_and_widens_it() -> None:
    windows = WindowAssembler(SLIVERS)
    assert not windows.add(batch(8, 9)).closed  # two events at the end of slot 0: a sliver
    moved = windows.add(batch(11, 12, 14))  # watermark 12 passes slot 0 with two events: below min_events
    assert (moved.closed, moved.merged) == ([], [(WindowId(0, 0), WindowId(1, 0))])
    assert list(windows.open) == [1] and windows.open[1].count == 5
    (closed,) = windows.add(batch(23)).closed  # watermark 21 passes slot 1
    assert (closed.id, closed.start, closed.end, closed.closed_by) == (WindowId(1, 0), 0.0, 20.0, "watermark")
    assert closed.data.event_time.tolist() == [8, 9, 11, 12, 14] and closed.duration(SLIVERS) == 20.0


def test_slivers_in_a_row_move_on_and_a_window_they_fill_closes_by_count() -> None:
    windows = WindowAssembler(SLIVERS)
    # One event in slot 0, one in slot 1, six in slot 2; the watermark (24) passes slots 0 and 1: 0 moves into 1,
    # which moves into 2 and fills it.
    outcome = windows.add(batch(9, 19, 21, 22, 23, 24, 25, 26))
    assert outcome.merged == [(WindowId(0, 0), WindowId(1, 0)), (WindowId(1, 0), WindowId(2, 0))]
    (closed,) = outcome.closed
    assert (closed.id, closed.closed_by, closed.start, len(closed.data)) == (WindowId(2, 0), "count", 0.0, 8)
    assert (windows.open, windows.next_part) == ({}, {2: 1})


def test_the_last_window_closes_small_when_none_is_open_after_it() -> None:
    windows = WindowAssembler(SLIVERS)
    windows.add(batch(1, 2, 3, 4, 11))
    (first,) = windows.add(batch(13)).closed  # slot 0 (four events) is not a sliver
    assert (first.id, len(first.data)) == (WindowId(0, 0), 4)
    (last,) = windows.advance(100.0).closed  # the stream went quiet: slot 1 has two events and nothing after it
    assert (last.id, len(last.data), windows.open) == (WindowId(1, 0), 2, {})


def test_replaying_batches_with_slivers_rebuilds_the_same_windows() -> None:
    rng = np.random.default_rng(1)
    batches = [batch(*np.sort(rng.uniform(i * 7, i * 7 + 9, size=int(rng.integers(1, 4))))) for i in range(30)]

    def windows(assembler: WindowAssembler) -> list[tuple[WindowId, float, list[float]]]:
        return [(c.id, c.start, c.data.event_time.tolist()) for b in batches for c in assembler.add(b).closed]

    first = windows(WindowAssembler(SLIVERS))
    assert first == windows(WindowAssembler(SLIVERS))
    assert any(start < window.slot * SLIVERS.max_seconds for window, start, _ in first), "some slivers moved"
