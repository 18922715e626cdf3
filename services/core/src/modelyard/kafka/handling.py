"""What a consumer's handlers work with: their errors, the retry policy, batch deliveries, and the stores a service
keeps next to its state (handled event ids, stream positions)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from opentelemetry import trace

from modelyard.events.envelope import Event, Position
from modelyard.retry import Backoff

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """The event can never be handled as it is (e.g. it contradicts this service's state): dead-letter it."""


class TransientError(Exception):
    """A failure that may pass (a dependency is down, a timeout): retry with backoff, dead-letter if it persists."""


HANDLER_BACKOFF = Backoff(first_s=0.2, max_s=10.0)


@dataclass(frozen=True)
class RetryPolicy:
    """Transient failures retried `max_attempts` times in all, waiting as `backoff` says (jittered). Keep the worst
    case (sum of waits plus handler time) well under `max_poll_interval_ms`: the partition makes no progress while
    its record is retried."""

    max_attempts: int = 5
    backoff: Backoff = HANDLER_BACKOFF
    jitter: float = 0.1  # +-10%, so consumers that failed together do not retry in lockstep
    retry_on: tuple[type[Exception], ...] = (TransientError,)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.backoff.first_s < 0 or not 0 <= self.jitter < 1:
            raise ValueError(f"invalid retry policy {self}")

    def delay_s(self, failed_attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after attempt number `failed_attempt` (1-based) failed transiently."""
        return self.backoff.wait_s(failed_attempt) * (1 + self.jitter * (2 * rand() - 1))

    async def run(self, call: Callable[[], Awaitable[None]], event: Event, span: trace.Span) -> Exception | None:
        """None once `call` (the handler on `event`, or on a batch that starts with it) succeeded, else the error
        that sends the event to the dead letters."""
        attempt = 1
        while True:
            try:
                await call()
                return None
            except self.retry_on as exc:
                if attempt >= self.max_attempts:
                    return exc
                delay = self.delay_s(attempt)
                span.add_event("retry", {"attempt": attempt, "delay_s": delay, "error": repr(exc)})
                log.debug("retrying event %s in %.2fs after %r", event.id, delay, exc)
                await asyncio.sleep(delay)
                attempt += 1
            except Exception as exc:  # PermanentError or a bug: another attempt would fail the same way
                return exc


@dataclass(frozen=True, eq=False)
class Delivery:
    """One event handed to a batch handler: where it was read, and the consumer's span of it (a child of the
    producer's span; make it current while handling the event to continue the trace)."""

    event: Event
    position: Position
    span: trace.Span


BatchHandler = Callable[[Sequence[Delivery]], None]


class PositionStore(Protocol):
    """Kept by a batch handler that stores each partition's next offset in the transaction that applies its
    records: on assignment the consumer resumes each partition from there, not from the group's commit."""

    def resume_positions(self, partitions: Collection[tuple[str, int]]) -> Mapping[tuple[str, int], int]:
        """The next offset to read of each partition the store knows (blocking; run in a worker thread)."""
        ...

    def restart_positions(self, partitions: Collection[tuple[str, int]]) -> None:
        """These partitions end before their stored position: the broker lost them and they were re-created, so
        they are read again from their first offset, which the store must no longer treat as already applied."""
        ...


class SeenEvents(Protocol):
    """Ids of events a consumer group has handled, kept by the service (e.g. a table next to its state) so
    that duplicates stay no-ops across restarts. Best when the service writes the id in the same transaction
    as the handler's effect; `add` is then a no-op."""

    async def contains(self, event_id: str) -> bool: ...

    async def add(self, event_id: str) -> None: ...


class RecentIds:
    """The last `capacity` event ids handled, least recently seen evicted first."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        if not isinstance(event_id, str) or event_id not in self._ids:
            return False
        self._ids.move_to_end(event_id)  # a duplicate now is likely again soon: keep it longest
        return True

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
