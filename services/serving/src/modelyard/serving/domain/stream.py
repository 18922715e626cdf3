"""The prediction stream's buffer: what the request path hands over.

The request path only appends a `Prediction` (references to arrays it already has) to a bounded buffer; building
records (`serving.adapters.records`) and publishing happen later, in batches, off the request path. When the
buffer is full (the broker is away and the publisher cannot keep up) new predictions are dropped and counted,
never waited for.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from modelyard.serving.domain.model import VersionRef
from modelyard.serving.domain.ports import StreamMetrics
from modelyard.serving.domain.tensors import Array

log = logging.getLogger(__name__)


@dataclass(slots=True)  # not frozen: a frozen dataclass costs microseconds to build, once per request
class Prediction:
    request_id: str
    ref: VersionRef
    time_ns: int
    inputs: Mapping[str, Array]
    output_names: Sequence[str]
    outputs: Sequence[Array]
    latency_s: float
    status_code: int
    traceparent: str
    plan_revision: int = 0  # of the plan that routed the request (provenance)


class RateLimitedLog:
    """Logs a warning at most once per `interval_s`, with how many times it was suppressed in between."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._next = 0.0
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        log.warning(message + " (%d similar messages suppressed)", *args, self._suppressed)
        self._suppressed = 0
        self._next = now + self.interval_s


class Dropped(StrEnum):
    """Why a prediction never reached the stream (the `reason` label of the dropped counter)."""

    BUFFER_FULL = "buffer_full"  # the broker is away or slower than the traffic
    RECORD_TOO_LARGE = "record_too_large"  # over the record cap even without its tensors
    REFUSED = "refused"  # the broker refused its batch for good (message too large, corrupt)


class Cut(StrEnum):
    """What a record lost to stay under its caps (the `reason` label of the truncated counter)."""

    REQUEST_ID = "request_id"  # cut to the request id cap
    TENSORS = "tensors"  # inputs and outputs left out: the record was over the record cap


class PredictionBuffer:
    """Bounded FIFO between the request path and the publisher; never blocks the caller."""

    def __init__(self, capacity: int, metrics: StreamMetrics) -> None:
        self.capacity = capacity
        self.dropped = 0
        self._items: deque[Prediction] = deque()
        self._metrics = metrics
        self._drop_log = RateLimitedLog()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, prediction: Prediction) -> None:
        if len(self._items) >= self.capacity:
            self.dropped += 1
            self._metrics.dropped(prediction.ref.model, Dropped.BUFFER_FULL)
            self._drop_log.warning("prediction buffer full: dropped records, %d in total", self.dropped)
            return
        self._items.append(prediction)

    def take(self, limit: int) -> list[Prediction]:
        """Remove and return the oldest `limit` predictions."""
        return [self._items.popleft() for _ in range(min(limit, len(self._items)))]
