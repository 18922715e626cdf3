"""Serving's events on Kafka: what it serves (modelyard.serving.status) and what it predicted (the stream)."""

from __future__ import annotations

import asyncio
import logging

from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from modelyard.contracts.events.v1 import serving_events_pb2 as srv
from modelyard.events.envelope import Event
from modelyard.events.topics import SERVING_PREDICTIONS, SERVING_STATUS
from modelyard.kafka.producer import EventPublisher, refused_for_good
from modelyard.retry import Backoff
from modelyard.serving.adapters.records import RecordEncoder, version_ref_message
from modelyard.serving.domain.model import VersionRef
from modelyard.serving.domain.ports import StreamMetrics
from modelyard.serving.domain.stream import Dropped, PredictionBuffer, RateLimitedLog

log = logging.getLogger(__name__)

SOURCE = "serving"
# At most this many records of a batch are linked from its span: OpenTelemetry's default span link limit.
MAX_RECORD_LINKS = 128
RETRIED = "retried"  # the outcome label of a transient delivery failure (a refused one is Dropped.REFUSED)
_TRACE_CONTEXT = TraceContextTextMapPropagator()


class KafkaStatusReporter:
    """Publishes ModelLoaded / ModelLoadFailed / ModelUnloaded; a broker that is away delays, never fails, a
    load: the event is logged as lost after `timeout_s` (the next load or restart reports the state again)."""

    def __init__(self, publisher: EventPublisher, replica: str, timeout_s: float = 10.0) -> None:
        self.publisher = publisher
        self.replica = replica
        self.timeout_s = timeout_s

    async def loaded(self, ref: VersionRef, warmup_ms: float) -> None:
        await self._publish(
            ref, srv.ModelLoaded(version=version_ref_message(ref), replica=self.replica, warmup_ms=warmup_ms)
        )

    async def load_failed(self, ref: VersionRef, reason: str) -> None:
        await self._publish(
            ref, srv.ModelLoadFailed(version=version_ref_message(ref), replica=self.replica, reason=reason)
        )

    async def unloaded(self, ref: VersionRef) -> None:
        await self._publish(ref, srv.ModelUnloaded(version=version_ref_message(ref), replica=self.replica))

    async def _publish(self, ref: VersionRef, payload: Message) -> None:
        event = Event.new(ref.model, payload, SOURCE)
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.publisher.publish(SERVING_STATUS, event)
        except Exception as exc:
            log.error("status event %s for %s not published: %r", event.type, ref, exc)


class PredictionPublisher:
    """Background task: every `interval_s`, takes up to `max_records` predictions from the buffer and publishes
    them as PredictionBatches sized by the encoder's policy (bytes, under the broker's message limit).

    A batch the broker did not take for a transient reason stays pending and is retried with backoff, ahead of
    newer records, so the stream catches up when the broker returns (meanwhile the full buffer drops and counts
    new records); a batch it refused for good (too large, corrupt) is dropped and counted, never retried, so one
    bad batch cannot block the stream.
    """

    def __init__(
        self,
        buffer: PredictionBuffer,
        publisher: EventPublisher,
        encoder: RecordEncoder,
        metrics: StreamMetrics,
        *,
        interval_s: float = 0.05,
        max_records: int = 500,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.buffer = buffer
        self.publisher = publisher
        self.encoder = encoder
        self.metrics = metrics
        self.interval_s = interval_s
        self.max_records = max_records
        self.max_backoff_s = max_backoff_s
        self._pending: list[srv.PredictionBatch] = []
        self.last_error: Exception | None = None  # of the last publish attempt: None while the stream delivers
        self._failure_log = RateLimitedLog()
        self._refused_log = RateLimitedLog()
        self._tracer = trace.get_tracer(__name__)
        metrics.track_pending(lambda: self.waiting)

    @property
    def waiting(self) -> int:
        """Records not published yet: buffered, or in a batch waiting for a retry."""
        return len(self.buffer) + sum(len(batch.request_ids) for batch in self._pending)

    async def run(self) -> None:
        retry = Backoff(first_s=self.interval_s, max_s=self.max_backoff_s)
        backoff = retry.first_s
        while True:
            await asyncio.sleep(backoff)
            try:
                await self.flush()
            except Exception as exc:
                self.last_error = exc
                backoff = retry.after(backoff)
                self._failure_log.warning(
                    "prediction stream: publish failed (%r); %d records waiting, retrying in %.2fs",
                    exc,
                    self.waiting,
                    backoff,
                )
            else:
                self.last_error = None
                backoff = retry.first_s

    async def delivering(self) -> bool:
        """A degradation check: the last attempt to publish went through (or there was nothing to publish)."""
        if self.last_error is not None:
            raise ConnectionError(f"publishing fails ({type(self.last_error).__name__}), {self.waiting} waiting")
        return True

    async def flush(self) -> None:
        """Publish everything waiting now; raises a transient error with the batches it hit kept pending."""
        while self._pending or self.buffer:
            if not self._pending:
                self._pending = self.encoder.batches(self.buffer.take(self.max_records))
            await self._publish_pending()

    async def _publish_pending(self) -> None:
        batches = self._pending
        spans: list[trace.Span | None] = []
        events = []
        for batch in batches:
            span = self._batch_span(batch)
            spans.append(span)
            if span is None:
                events.append(Event.new(batch.model_name, batch, SOURCE))
                continue
            with trace.use_span(span):
                events.append(Event.new(batch.model_name, batch, SOURCE))  # the send span: a child of the batch's
        try:
            outcomes = await self.publisher.deliver(SERVING_PREDICTIONS, events)
        except BaseException as exc:
            for span in spans:
                _end(span, exc)
            raise
        for span, outcome in zip(spans, outcomes, strict=True):
            _end(span, outcome)
        retry = []
        for batch, outcome in zip(batches, outcomes, strict=True):
            if outcome is None:
                continue
            if refused_for_good(outcome):
                self.metrics.delivery_failed(Dropped.REFUSED)
                self.metrics.dropped(batch.model_name, Dropped.REFUSED, len(batch.request_ids))
                self._refused_log.warning(
                    "prediction stream: the broker refused a batch of %d records of %s for good (%r): dropped",
                    len(batch.request_ids),
                    batch.model_name,
                    outcome,
                )
            else:
                self.metrics.delivery_failed(RETRIED)
                retry.append((batch, outcome))
        self._pending = [batch for batch, _ in retry]
        if retry:
            raise retry[0][1]

    def _batch_span(self, batch: srv.PredictionBatch) -> trace.Span | None:
        """A span for one batch, linked to the inference spans of (a sample of) its records; None when its records
        carry no trace context (inference spans are only opened when they are exported)."""
        traceparents = [traceparent for traceparent in batch.traceparents if traceparent]
        if not traceparents:
            return None
        links = [
            Link(context, {"modelyard.link": "prediction"})
            for traceparent in _spread(traceparents, MAX_RECORD_LINKS)
            if (context := _span_context(traceparent)) is not None
        ]
        return self._tracer.start_span(
            f"create {SERVING_PREDICTIONS.name}",
            context=trace.set_span_in_context(trace.INVALID_SPAN),  # a batch of many requests: a trace of its own
            kind=SpanKind.PRODUCER,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "create",
                "messaging.destination.name": SERVING_PREDICTIONS.name,
                "messaging.batch.message_count": len(batch.request_ids),
                "modelyard.model.name": batch.model_name,
                "modelyard.traced_records": len(traceparents),
            },
        )


def _end(span: trace.Span | None, error: BaseException | None) -> None:
    if span is None:
        return
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


def _spread(items: list[str], limit: int) -> list[str]:
    """At most `limit` items, evenly spaced over the list (deterministic: the same batch links the same records)."""
    if len(items) <= limit:
        return items
    return [items[i * len(items) // limit] for i in range(limit)]


def _span_context(traceparent: str) -> trace.SpanContext | None:
    context = trace.get_current_span(_TRACE_CONTEXT.extract({"traceparent": traceparent})).get_span_context()
    return context if context.is_valid else None
