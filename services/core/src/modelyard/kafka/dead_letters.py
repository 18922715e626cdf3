"""Dead letters: a record a consumer can never handle, copied unchanged to `<topic>.dlq` with the error in headers
(awaited before the record's offset is committed), counted by reason, so that one poison record never blocks a
partition."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from prometheus_client import Counter

from modelyard.events import headers as h
from modelyard.events.envelope import Headers
from modelyard.events.topics import DLQ_SUFFIX
from modelyard.kafka.producer import EventPublisher
from modelyard.kafka.security import KafkaSecurity

log = logging.getLogger(__name__)

_DLQ_HEADERS = frozenset(
    {
        h.DLQ_ERROR,
        h.DLQ_ERROR_TYPE,
        h.DLQ_ORIGINAL_TOPIC,
        h.DLQ_ORIGINAL_PARTITION,
        h.DLQ_ORIGINAL_OFFSET,
        h.DLQ_CONSUMER_GROUP,
    }
)
_MAX_ERROR_HEADER = 1000  # characters: a dead letter needs the gist of the error, not a multi-kB repr

DEAD_LETTERS = Counter(
    "modelyard_events_dead_lettered",
    "Records a consumer refused and copied to the dead-letter topic, by reason (the error's type).",
    ["topic", "group", "reason"],
)


class DeadLetters:
    """The dead-letter topics of one consumer group."""

    def __init__(
        self, bootstrap: str, group_id: str, *, idempotence: bool, client_id: str | None, security: KafkaSecurity
    ) -> None:
        self.group_id = group_id
        # Dead letters are rare; a producer of our own keeps their delivery independent of the service's.
        # Its topics are the dead-letter topics, which the consumer's guard verifies.
        self.publisher = EventPublisher(
            bootstrap,
            idempotence=idempotence,
            linger_ms=0,
            client_id=client_id,
            security=security,
            topic_check_interval_s=None,
        )

    async def start(self) -> None:
        await self.publisher.start()

    async def stop(self) -> None:
        await self.publisher.stop()

    async def send(self, record: Any, error: BaseException, span: trace.Span) -> None:
        # Keep the original key, value and headers byte for byte; replace DLQ headers of an earlier trip.
        headers: Headers = [(k, v) for k, v in record.headers if k not in _DLQ_HEADERS]
        headers += [
            (h.DLQ_ERROR, str(error)[:_MAX_ERROR_HEADER].encode()),
            (h.DLQ_ERROR_TYPE, type(error).__qualname__.encode()),
            (h.DLQ_ORIGINAL_TOPIC, record.topic.encode()),
            (h.DLQ_ORIGINAL_PARTITION, str(record.partition).encode()),
            (h.DLQ_ORIGINAL_OFFSET, str(record.offset).encode()),
            (h.DLQ_CONSUMER_GROUP, self.group_id.encode()),
        ]
        await self.publisher.send_record(record.topic + DLQ_SUFFIX, record.key, record.value, headers)
        DEAD_LETTERS.labels(topic=record.topic, group=self.group_id, reason=type(error).__name__).inc()
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        log.warning(
            "dead-lettered %s[%d]@%d (group %s): %r",
            record.topic,
            record.partition,
            record.offset,
            self.group_id,
            error,
        )
