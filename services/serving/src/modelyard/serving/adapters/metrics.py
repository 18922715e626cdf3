"""Prometheus instruments per model and version; label children are resolved once, at load."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from modelyard.errors import ErrorKind
from modelyard.runtime import gauges
from modelyard.serving.domain.errors import OUTCOMES
from modelyard.serving.domain.model import VersionRef
from modelyard.serving.domain.ports import ReadInFlight

_LABELS = ("model", "version")
REQUESTS = Counter("modelyard_serving_requests", "Inference requests answered", [*_LABELS, "code"])
LATENCY = Histogram(
    "modelyard_serving_request_duration_seconds",
    "Time from routing to the encoded answer",
    _LABELS,
    buckets=(1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5),
)
QUEUE = Histogram(
    "modelyard_serving_queue_seconds",
    "Time a request waited for its dynamic batch",
    _LABELS,
    buckets=(1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2),
)
BATCH = Histogram(
    "modelyard_serving_batch_size", "Requests per executed batch", _LABELS, buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
IN_FLIGHT = Gauge(
    "modelyard_serving_in_flight", "Requests running on a version now", _LABELS, multiprocess_mode="livesum"
)
STREAM_DROPPED = Counter(
    "modelyard_serving_stream_dropped", "Prediction records that never reached the stream", ["model", "reason"]
)
STREAM_TRUNCATED = Counter(
    "modelyard_serving_stream_truncated", "Prediction records cut to fit the stream's caps", ["model", "reason"]
)
STREAM_DELIVERY_FAILURES = Counter(
    "modelyard_serving_stream_delivery_failures",
    "Prediction batches the broker did not take: retried (transient) or dropped (refused for good)",
    ["outcome"],
)
STREAM_PENDING = Gauge(
    "modelyard_serving_stream_pending", "Prediction records waiting to be published", multiprocess_mode="livesum"
)


class VersionInstruments:
    def __init__(self, ref: VersionRef) -> None:
        self._labels = (ref.model, str(ref.version))
        self._requests = {code: REQUESTS.labels(*self._labels, code.name) for code in OUTCOMES}
        self._latency = LATENCY.labels(*self._labels)
        self._queue = QUEUE.labels(*self._labels)
        self._batch = BATCH.labels(*self._labels)

    def observe(self, code: ErrorKind, latency_s: float) -> None:
        self._requests[code].inc()
        self._latency.observe(latency_s)

    def observe_batch(self, size: int, queue_s: float) -> None:
        self._batch.observe(size)
        self._queue.observe(queue_s)

    def track_in_flight(self, read: ReadInFlight) -> None:
        # Read at scrape time: no gauge update on the request path.
        gauges.track(IN_FLIGHT.labels(*self._labels), read)

    def close(self) -> None:
        """Forget this version's series, so an unloaded version stops being exported."""
        for metric in (LATENCY, QUEUE, BATCH, IN_FLIGHT):
            gauges.forget(metric, *self._labels)
        for code in OUTCOMES:
            gauges.forget(REQUESTS, *self._labels, code.name)


class PrometheusMetrics:
    def for_version(self, ref: VersionRef) -> VersionInstruments:
        return VersionInstruments(ref)


class PrometheusStreamMetrics:
    def dropped(self, model: str, reason: str, count: int = 1) -> None:
        STREAM_DROPPED.labels(model, reason).inc(count)

    def truncated(self, model: str, reason: str) -> None:
        STREAM_TRUNCATED.labels(model, reason).inc()

    def delivery_failed(self, outcome: str) -> None:
        STREAM_DELIVERY_FAILURES.labels(outcome).inc()

    def track_pending(self, read: Callable[[], float]) -> None:
        gauges.track(STREAM_PENDING, read)  # read at scrape time
