"""Publishing events: acks from every in-sync replica, delivery awaited, one PRODUCER span per event."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal, Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from modelyard.events import envelope
from modelyard.events.envelope import Event, Headers
from modelyard.events.signing import EventSigner
from modelyard.events.topics import BY_NAME, Topic
from modelyard.kafka.security import PLAINTEXT, KafkaSecurity
from modelyard.kafka.topic_guard import DEFAULT_INTERVAL_S, TopicGuard
from modelyard.settings import ServiceSettings

Compression = Literal["gzip", "snappy", "lz4", "zstd"]


class EventPublisher:
    """Sends events to Kafka and waits until the broker has them; `async with EventPublisher(...) as p:`.

    The trace context written to the headers is the one of this publish's PRODUCER span, itself a child of the
    context the event was created in (`Event.new`), so a consumer's span hangs under the send that fed it.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        idempotence: bool = False,
        linger_ms: int = 5,
        max_batch_size: int = 64 * 1024,
        compression: Compression | None = "gzip",
        request_timeout_ms: int = 30_000,
        client_id: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        signer: EventSigner | None = None,
        security: KafkaSecurity = PLAINTEXT,
        topic_check_interval_s: float | None = DEFAULT_INTERVAL_S,
    ) -> None:
        """`topic_check_interval_s`: how often the catalogue topics published to are verified (re-created when the
        broker lost them, see `TopicGuard`); None: never (a consumer's dead-letter producer, whose consumer does)."""
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            **security.client_options(),
            client_id=client_id,
            acks="all",
            enable_idempotence=idempotence,
            linger_ms=linger_ms,
            max_batch_size=max_batch_size,
            compression_type=compression,
            request_timeout_ms=request_timeout_ms,
        )
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        self._signer = signer  # signs what goes to the catalogue's signed topics
        self._started = False
        self._guard = (
            None
            if topic_check_interval_s is None
            else TopicGuard(
                bootstrap, interval_s=topic_check_interval_s, on_repair=self._refresh_metadata, security=security
            )
        )

    @classmethod
    def from_settings(cls, settings: ServiceSettings, **options: Any) -> EventPublisher:
        return cls(
            settings.kafka_bootstrap,
            idempotence=settings.kafka_idempotence,
            client_id=settings.service_name,
            security=settings.kafka_security,
            topic_check_interval_s=settings.kafka_topic_check_interval_s,
            **options,
        )

    async def start(self) -> None:
        await self._producer.start()
        self._started = True
        if self._guard is not None:
            self._guard.start()

    async def stop(self) -> None:
        """Flush what is still buffered, then close."""
        self._started = False
        if self._guard is not None:
            await self._guard.stop()
        await self._producer.stop()

    async def _refresh_metadata(self, repaired: list[str]) -> None:
        # The client still maps keys to the partitions of the lost topic: learn the re-created ones now.
        self._producer.client.force_metadata_update()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def publish(self, topic: Topic | str, event: Event) -> None:
        """Send one event and return once every in-sync replica has it; raises the broker's error otherwise."""
        await self.publish_many(topic, [event])

    async def publish_many(self, topic: Topic | str, events: Sequence[Event]) -> None:
        """Send events in one go (they share batches) and wait for all of them; raises the first failure.

        Events with the same key keep their order: they go to one partition, in the order given.
        """
        for outcome in await self.deliver(topic, events):
            if outcome is not None:
                raise outcome

    async def deliver(self, topic: Topic | str, events: Sequence[Event]) -> list[KafkaError | None]:
        """Like `publish_many`, but returns each event's outcome in order (None once delivered, else the Kafka
        error) instead of raising, so that a caller can retry only what failed and drop what `refused_for_good`.
        """
        name = _checked_topic(topic, events)
        catalogued = BY_NAME.get(name)
        signer = self._signer if catalogued is not None and catalogued.signed else None
        if not self._started:
            raise RuntimeError("EventPublisher is not started")
        if self._guard is not None:
            self._guard.watch(name)
        spans: list[trace.Span] = []
        deliveries: list[asyncio.Future[Any]] = []
        try:
            for event in events:
                span = self._start_span(name, event)
                spans.append(span)
                key, value, headers = envelope.encode(_with_trace_of(event, span))
                if signer is not None:
                    headers = signer.sign(name, key, value, headers)
                deliveries.append(await self._send(name, key, value, headers))
            results = await asyncio.gather(*deliveries, return_exceptions=True)
        except BaseException as exc:
            for span in spans:
                _end(span, exc)
            raise
        for span, result in zip(spans, results, strict=True):
            if isinstance(result, BaseException):
                _end(span, result)
            else:
                span.set_attribute("messaging.destination.partition.id", str(result.partition))
                span.set_attribute("messaging.kafka.offset", result.offset)
                _end(span, None)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, KafkaError):
                raise result  # not the broker's answer (a cancelled delivery): not an outcome to act on
        if self._guard is not None and any(isinstance(result, KafkaError) for result in results):
            self._guard.check_soon()  # a lost topic explains most failed sends
        return [result if isinstance(result, KafkaError) else None for result in results]

    async def _send(self, topic: str, key: bytes, value: bytes, headers: Headers) -> asyncio.Future[Any]:
        """The delivery future of one record; a record the client refuses before sending it (larger than
        `max_request_size`, say) gets a future that already holds the error, like one the broker refused."""
        try:
            delivery: asyncio.Future[Any] = await self._producer.send(topic, value=value, key=key, headers=headers)
        except KafkaError as exc:
            refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            refused.set_exception(exc)
            return refused
        return delivery

    async def send_record(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        """Send a raw record as is and wait for it (dead letters keep the original bytes)."""
        if not self._started:
            raise RuntimeError("EventPublisher is not started")
        await self._producer.send_and_wait(topic, value=value, key=key, headers=headers)

    def _start_span(self, topic: str, event: Event) -> trace.Span:
        # Parent on where the event was created: with an outbox, that is the request that caused it.
        parent = event.trace_context() if event.trace else None
        return self._tracer.start_span(
            f"send {topic}",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": topic,
                "messaging.message.id": event.id,
                "messaging.kafka.message.key": event.key,
                "cloudevents.event_id": event.id,
                "cloudevents.event_type": event.type,
                "cloudevents.event_source": event.source,
            },
        )


# The broker (or the client's own size check) refused these bytes: sending the same record again fails the same way.
_REFUSED_FOR_GOOD = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError, CorruptRecordException)


def refused_for_good(error: BaseException) -> bool:
    """Whether a failed send is about the record itself (too large, corrupt), not about the broker's state:
    retrying it can never succeed, and retrying it ahead of others would block them."""
    return isinstance(error, _REFUSED_FOR_GOOD)


def _checked_topic(topic: Topic | str, events: Sequence[Event]) -> str:
    if isinstance(topic, str):
        return topic
    # A catalogue topic says which events it carries; anything else on it is a bug that consumers would DLQ.
    foreign = {e.type for e in events} - set(topic.event_types)
    if foreign:
        raise ValueError(f"topic {topic.name} does not carry {', '.join(sorted(foreign))}")
    return topic.name


def _with_trace_of(event: Event, span: trace.Span) -> Event:
    if not span.get_span_context().is_valid:
        return event  # tracing is off here: pass on whatever context the event was created with
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return dataclasses.replace(event, trace=carrier)


def _end(span: trace.Span, error: BaseException | None) -> None:
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()
