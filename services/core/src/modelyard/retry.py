"""The one backoff every retry loop of Modelyard uses: waits that double from `first_s` up to `max_s`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Waits that double from `first_s` up to `max_s`. A loop that never gives up (a relay waiting for the broker)
    steps with `after`; a bounded one (startup plans) takes `waits()`, whose total stays within `deadline_s`."""

    first_s: float = 0.2
    max_s: float = 5.0
    deadline_s: float = 0.0  # for `waits`: 0 means one attempt, no retry

    def after(self, wait_s: float) -> float:
        """The wait that follows one of `wait_s`."""
        return min(wait_s * 2, self.max_s)

    def wait_s(self, failed_attempt: int) -> float:
        """The wait after attempt number `failed_attempt` (1-based) failed: `first_s`, doubled each time."""
        return min(self.first_s * 2.0 ** (failed_attempt - 1), self.max_s)

    def waits(self) -> list[float]:
        """The waits between attempts, the last attempt starting no later than `deadline_s` after the first."""
        waits: list[float] = []
        wait, total = self.first_s, 0.0
        while total + wait <= self.deadline_s:
            waits.append(wait)
            total += wait
            wait = self.after(wait)
        return waits
