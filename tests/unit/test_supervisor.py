"""The restart policy of `modelyard up` and of a service's worker supervisor: exponential backoff, and a crash loop
recognised rather than restarted forever."""

import pytest

from modelyard.retry import Backoff
from modelyard.runtime.children import Restarts

pytestmark = pytest.mark.unit


def test_restart_delays_double_and_the_fifth_crash_in_a_minute_is_a_crash_loop() -> None:
    restarts = Restarts()
    delays = [restarts.crashed(-9, now) for now in (0.0, 5.0, 10.0, 20.0)]
    assert delays == [1.0, 2.0, 4.0, 8.0]
    assert restarts.last_exit == -9
    assert restarts.crashed(1, 30.0) is None
    assert restarts.last_exit == 1


def test_crashes_older_than_the_window_are_forgotten() -> None:
    restarts = Restarts(backoff=Backoff(first_s=1.0, max_s=3.0), limit=3, window_s=60.0)
    assert restarts.crashed(1, 0.0) == 1.0
    assert restarts.crashed(1, 10.0) == 2.0
    assert restarts.crashed(1, 100.0) == 1.0  # the first two are over a minute old: not a loop
    assert restarts.crashed(1, 110.0) == 2.0
    assert restarts.crashed(1, 115.0) is None  # three within a minute
    assert Restarts(backoff=Backoff(first_s=1.0, max_s=3.0), limit=10).crashed(1, 0.0) == 1.0


def test_describe_names_the_count_and_the_last_exit_code() -> None:
    restarts = Restarts()
    assert restarts.describe() == "no restarts"
    restarts.crashed(-9, 0.0)
    restarts.count += 1
    assert restarts.describe() == "1 restarts, last exit code -9"
