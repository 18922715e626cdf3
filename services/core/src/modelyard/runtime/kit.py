"""The service kit: the start-up glue every service's composition root shares, so that four bootstraps do not
each write their own. Waiting for the broker (a publisher that starts when it can, a consumer that runs until the
service stops) lives here; the database's readiness and disposal live in `modelyard.sql.engine`, the outbox relay
task in `modelyard.sql.outbox` (services without a database do not import SQLAlchemy)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from modelyard.events.signing import EventSigner
from modelyard.events.topics import ALL, Topic
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.consumer import EventConsumer
from modelyard.kafka.producer import EventPublisher
from modelyard.retry import Backoff
from modelyard.settings import ServiceSettings

log = logging.getLogger(__name__)

# How long a service waits between attempts to reach a broker that is not there (yet, or any more).
BROKER_RETRY = Backoff(first_s=0.5, max_s=2.0)


async def started_publisher(
    settings: ServiceSettings, *, signer: EventSigner | None = None, retry: Backoff = BROKER_RETRY
) -> EventPublisher:
    """A started publisher, waiting for the broker as long as it takes (events wait in the outbox meanwhile)."""
    wait = retry.first_s
    while True:
        publisher = EventPublisher.from_settings(settings, signer=signer)
        try:
            await publisher.start()
            return publisher
        except asyncio.CancelledError:
            await publisher.stop()  # stopping the service while the broker is away: leave nothing open
            raise
        except Exception as exc:  # aiokafka raises several unrelated types for "not there yet"
            log.warning("event publisher cannot start yet: %r", exc)
            await publisher.stop()
            await asyncio.sleep(wait)
            wait = retry.after(wait)


async def consume_forever(
    settings: ServiceSettings,
    consumer: EventConsumer,
    topics: Sequence[Topic] = ALL,
    *,
    retry: Backoff = BROKER_RETRY,
) -> None:
    """Start a consumer once its topics exist (waiting for the broker as long as it takes), run it until the
    service stops, then stop it within half the drain budget (a record cut off is simply delivered again)."""
    wait = retry.first_s
    while True:
        try:
            await ensure_topics(settings.kafka_bootstrap, topics, timeout_s=10, security=settings.kafka_security)
            await consumer.start()
            break
        except Exception as exc:
            log.warning("consumer %s cannot start yet: %r", consumer.group_id, exc)
            await asyncio.sleep(wait)
            wait = retry.after(wait)
    try:
        await consumer.wait()
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop(grace_s=settings.shutdown_grace_s / 2)
