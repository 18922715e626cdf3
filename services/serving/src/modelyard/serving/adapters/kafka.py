"""Serving's events on Kafka: what it serves (modelyard.serving.status) and what it predicted (the stream)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from modelyard.contracts.events.v1 import serving_events_pb2 as srv
from modelyard.events.envelope import Event
from modelyard.events.topics import SERVING_PREDICTIONS, SERVING_STATUS
from modelyard.kafka.producer import EventPublisher
from modelyard.serving.domain.model import VersionRef
from modelyard.serving.domain.stream import (
    Prediction,
    PredictionBuffer,
    RateLimitedLog,
    RecordPolicy,
    to_batches,
    version_ref_message,
)

log = logging.getLogger(__name__)

SOURCE = "serving"
# At most this many records of a batch are linked from its span: OpenTelemetry's default span link limit.
MAX_RECORD_LINKS = 128
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
    """Background task: every `interval_s`, publishes what the buffer holds as one PredictionBatch per model
    (in chunks of `max_records`). A failed publish leaves the records in the buffer and is retried with backoff,
    so the stream catches up when the broker returns; meanwhile the full buffer drops and counts new records."""

    def __init__(
        self,
        buffer: PredictionBuffer,
        publisher: EventPublisher,
        policy: RecordPolicy,
        *,
        interval_s: float = 0.05,
        max_records: int = 500,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.buffer = buffer
        self.publisher = publisher
        self.policy = policy
        self.interval_s = interval_s
        self.max_records = max_records
        self.max_backoff_s = max_backoff_s
        self._failure_log = RateLimitedLog()
        self._tracer = trace.get_tracer(__name__)

    async def run(self) -> None:
        backoff = self.interval_s
        while True:
            await asyncio.sleep(backoff)
            try:
                await self.flush()
            except Exception as exc:
                backoff = min(backoff * 2, self.max_backoff_s)
                self._failure_log.warning(
                    "prediction stream: publish failed (%r); %d records waiting, retrying in %.2fs",
                    exc,
                    len(self.buffer),
                    backoff,
                )
            else:
                backoff = self.interval_s

    async def flush(self) -> None:
        """Publish everything buffered now; raises the broker's error with the unpublished records kept."""
        while self.buffer:
            predictions = self.buffer.peek(self.max_records)
            batches = to_batches(predictions, self.policy)
            traced = _traceparents_by_model(predictions)
            spans: list[trace.Span] = []
            events = []
            for model, batch in batches.items():
                span = self._batch_span(model, len(batch.records), traced.get(model))
                if span is None:
                    events.append(Event.new(model, batch, SOURCE))
                    continue
                spans.append(span)
                with trace.use_span(span):
                    events.append(Event.new(model, batch, SOURCE))  # the send span becomes a child of the batch's
            try:
                await self.publisher.publish_many(SERVING_PREDICTIONS, events)
            except BaseException as exc:
                for span in spans:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                    span.end()
                raise
            for span in spans:
                span.end()
            self.buffer.commit(len(predictions))

    def _batch_span(self, model: str, records: int, traceparents: list[str] | None) -> trace.Span | None:
        """A span for one batch, linked to the inference spans of (a sample of) its records; None when its records
        carry no trace context (inference spans are only opened when they are exported)."""
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
                "messaging.batch.message_count": records,
                "modelyard.model.name": model,
                "modelyard.traced_records": len(traceparents),
            },
        )


def _traceparents_by_model(predictions: Sequence[Prediction]) -> dict[str, list[str]]:
    traced: dict[str, list[str]] = {}
    for prediction in predictions:
        if prediction.traceparent:
            traced.setdefault(prediction.ref.model, []).append(prediction.traceparent)
    return traced


def _spread(items: list[str], limit: int) -> list[str]:
    """At most `limit` items, evenly spaced over the list (deterministic: the same batch links the same records)."""
    if len(items) <= limit:
        return items
    return [items[i * len(items) // limit] for i in range(limit)]


def _span_context(traceparent: str) -> trace.SpanContext | None:
    context = trace.get_current_span(_TRACE_CONTEXT.extract({"traceparent": traceparent})).get_span_context()
    return context if context.is_valid else None
