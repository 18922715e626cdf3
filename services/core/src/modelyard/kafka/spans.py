"""The consumer's OpenTelemetry spans, after the messaging semantic conventions.

One CONSUMER span per record handled alone, a child of its producer's span (a record that is not an event starts a
trace of its own); one per run of a batch handler, a child of its first event's producer span with links to the
others' (up to OpenTelemetry's default link limit): a span per event cost more than handling a small one (a label).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from modelyard.events.envelope import Event

_LINK_LIMIT = 128  # OpenTelemetry's default: a batch span links to at most this many of its other events


class ConsumerSpans:
    """Starts the spans of one consumer group's processing."""

    def __init__(self, tracer: trace.Tracer, group_id: str) -> None:
        self._tracer = tracer
        self._group_id = group_id

    @contextmanager
    def record(self, record: Any, event: Event | None) -> Iterator[trace.Span]:
        with trace.use_span(self.start(record, event), end_on_exit=True) as span:
            yield span

    def batch(self, events: list[tuple[Any, Event]]) -> trace.Span:
        """The span of a run handled together: under the first event's producer span, linked to the next ones'."""
        (first, event), (last, _) = events[0], events[-1]
        links = []
        for _, other in events[1 : 1 + _LINK_LIMIT]:  # a bounded sample: extracting every context costs too
            context = trace.get_current_span(other.trace_context()).get_span_context()
            if context.is_valid:
                links.append(Link(context))
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": first.topic,
            "messaging.consumer.group.name": self._group_id,
            "messaging.destination.partition.id": str(first.partition),
            "messaging.batch.message_count": len(events),
            "messaging.kafka.offset": first.offset,
            "modelyard.last_offset": last.offset,
            "cloudevents.event_type": event.type,
        }
        return self._tracer.start_span(
            f"process {first.topic}",
            context=event.trace_context(),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        )

    def start(self, record: Any, event: Event | None) -> trace.Span:
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.consumer.group.name": self._group_id,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
        }
        if event is not None:
            attributes |= {
                "messaging.message.id": event.id,
                "messaging.kafka.message.key": event.key,
                "cloudevents.event_id": event.id,
                "cloudevents.event_type": event.type,
                "cloudevents.event_source": event.source,
            }
        # Parented on the producer's span; a record that is not an event starts a trace of its own.
        parent = event.trace_context() if event is not None else otel_context.Context()
        return self._tracer.start_span(
            f"process {record.topic}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        )
