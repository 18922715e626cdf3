"""A window too small to test (a sliver of the time grid, here at a slot boundary) moves into the next open window,
through the monitor and its store: the merged window is tested with the sliver's rows and start, the sliver's
prediction-log entries point at it, and a restart at any event (or a redelivery) gives the same windows and
incidents as an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.monitor.domain.simulation import Shift
from modelyard.monitor.testing import consumed
from tests.unit.monitor.test_monitor_handlers import POLICY, batch, sqlite_monitor

pytestmark = pytest.mark.unit
SLOT_END_MS = 2_800_000  # batch() times are ms after 1.7e9 s, 800 s into an hour slot: the slot ends here
SHIFT = Shift((0, 1, 2), mean_sd=0.8)
EVENTS = [
    consumed(0, batch("m", SLOT_END_MS - 50, 50, seed=0)),  # 50 at the slot's end: a sliver (min_events 100)
    consumed(1, batch("m", SLOT_END_MS + 30_000, 100, seed=1, shift=SHIFT)),  # the watermark passes the slot
    consumed(2, batch("m", SLOT_END_MS + 30_100, 100, seed=2, shift=SHIFT)),  # the merged window fills (200)
    consumed(3, batch("m", SLOT_END_MS + 31_000, 150, seed=3, shift=SHIFT)),
    consumed(4, batch("m", SLOT_END_MS + 3_700_000, 120, seed=4, shift=SHIFT)),  # the next slot: the last closes
]


def test_a_sliver_moves_into_the_next_window_which_is_tested_with_it(tmp_path: Path) -> None:
    monitor_, store = sqlite_monitor(tmp_path / "monitor.db")
    monitor_.handle_predictions(EVENTS[:2])
    state = store.load_state("m", 1)
    assert state is not None
    (window,) = state.assembler.open.values()  # restored from the store: the sliver's rows are in the next window
    assert (window.count, window.first_slot, len(window.data())) == (150, window.id.slot - 1, 150)
    sliver_id = EVENTS[0].content[0].request_ids[0]
    assert monitor_.prediction_trace(sliver_id).prediction.window == str(window.id)
    monitor_.handle_predictions(EVENTS[2:3])
    (report,) = store.window_reports("m", 1)
    assert (report.window, report.n, report.tested, report.closed_by) == (str(window.id), 200, True, "count")
    assert report.end - report.start == 2 * POLICY.window.max_seconds
    assert monitor_.prediction_trace(sliver_id).window is not None  # the sliver's predictions have a tested window


@pytest.mark.parametrize("stop_after", [1, 2, 3, 4])
def test_a_restart_at_any_event_gives_the_same_windows_and_incidents(tmp_path: Path, stop_after: int) -> None:
    uninterrupted, expected = sqlite_monitor(tmp_path / "one.db")
    uninterrupted.handle_predictions(EVENTS)
    first, store = sqlite_monitor(tmp_path / "two.db")
    first.handle_predictions(EVENTS[:stop_after])
    restarted, _ = sqlite_monitor(tmp_path / "two.db")
    restarted.handle_predictions(EVENTS[stop_after - 1 :])  # one redelivered, then the rest
    assert [r.window for r in expected.window_reports("m", 1)] == ["472223.1", "472223.0"]
    assert store.window_reports("m", 1) == expected.window_reports("m", 1)
    assert [(i.incident_id, i.signal, i.feature) for i in store.incident_views("m")] == [
        (i.incident_id, i.signal, i.feature) for i in expected.incident_views("m")
    ]
    assert store.statuses("m") == expected.statuses("m")
