"""The transactional outbox: events written in the same transaction as the change, relayed to Kafka afterwards.

A service adds `outbox_table(metadata)` to its schema and calls `enqueue(connection, table, topic, event)` inside
the transaction that makes the change, so there is no event for a rolled-back change and no change without its
event. `OutboxRelay` publishes pending rows in commit order, awaiting the broker's acks, and then marks them sent;
while the broker is away it keeps the rows and retries with backoff. Delivery is at least once: a crash between
publish and mark sends again, and consumers de-duplicate on the CloudEvents id, which the row keeps.

`prepare` (typically `ensure_topics`) runs before every batch that has rows to send, not only after a failure:
the embedded broker forgets its topics on a restart and then (seen with Tansu) acknowledges records for the lost
topics and drops them. Idle polls do not call it, and a registry emits few events, so this costs little. A
restart between `prepare` and the send can still lose a batch on the embedded broker; real Kafka with topic
auto-creation off refuses such a send, and the relay retries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelyard.events.envelope import Event
from modelyard.events.signing import EventSigner
from modelyard.events.topics import Topic, payload_type
from modelyard.kafka.admin import ensure_topics
from modelyard.retry import Backoff
from modelyard.runtime import BackgroundTask
from modelyard.runtime.kit import started_publisher
from modelyard.settings import ServiceSettings
from modelyard.sql.engine import UTCDateTime, transaction

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """What the relay needs of `modelyard.kafka.producer.EventPublisher`."""

    async def publish_many(self, topic: Topic | str, events: Sequence[Event]) -> None: ...


def outbox_table(metadata: sa.MetaData, name: str = "outbox") -> sa.Table:
    """The outbox table: one row per event, pending while `sent_at` is null."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("event_key", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("event_time", UTCDateTime(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("trace", sa.Text(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Index(f"ix_{name}_pending", "sent_at", "id"),
    )


def enqueue(connection: Connection, table: sa.Table, topic: Topic, event: Event) -> None:
    """Write `event` for `topic` into the outbox, inside the caller's transaction."""
    if event.type not in topic.event_types:
        raise ValueError(f"topic {topic.name} does not carry {event.type}")
    connection.execute(
        table.insert().values(
            event_id=event.id,
            topic=topic.name,
            event_key=event.key,
            event_type=event.type,
            source=event.source,
            event_time=event.time,
            payload=event.payload.SerializeToString(),
            trace=json.dumps(event.trace, sort_keys=True),
        )
    )


def pending_count(engine: Engine, table: sa.Table) -> int:
    with transaction(engine, write=False) as connection:
        return int(connection.scalar(sa.select(sa.func.count()).where(table.c.sent_at.is_(None))) or 0)


class OutboxRelay:
    """Publishes pending outbox rows to Kafka in commit order and marks them sent."""

    def __init__(
        self,
        engine: Engine,
        table: sa.Table,
        publisher: Publisher,
        *,
        prepare: Callable[[], Awaitable[None]] | None = None,
        batch_size: int = 100,
        poll_interval_s: float = 0.1,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._engine = engine
        self._table = table
        self._publisher = publisher
        self._prepare = prepare
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._max_backoff_s = max_backoff_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Ask for a relay pass now rather than at the next poll (call from the event loop's thread)."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled; never gives up on the broker."""
        retry = Backoff(first_s=self._poll_interval_s, max_s=self._max_backoff_s)
        backoff = retry.first_s
        while True:
            try:
                relayed = await self.relay_once()
                backoff = retry.first_s
                if relayed:
                    continue  # more may be waiting: drain before sleeping
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Broker away (or a database hiccup): the rows stay pending; back off and try again.
                log.warning("outbox relay: %r; retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = retry.after(backoff)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)

    async def relay_once(self) -> int:
        """Publish one batch of pending rows and mark them sent; the number relayed."""
        rows = await asyncio.to_thread(self._pending)
        if not rows:
            return 0
        if self._prepare is not None:
            await self._prepare()
        # Group by topic keeping commit order; one publish_many per topic keeps per-key order (same partition).
        by_topic: dict[str, list[Event]] = {}
        for row in rows:
            by_topic.setdefault(row.topic, []).append(_event(row))
        for topic, events in by_topic.items():
            await self._publisher.publish_many(topic, events)
        await asyncio.to_thread(self._mark_sent, [row.id for row in rows])
        return len(rows)

    def _pending(self) -> Sequence[sa.Row[tuple[object, ...]]]:
        table = self._table
        with transaction(self._engine, write=False) as connection:
            query = sa.select(table).where(table.c.sent_at.is_(None)).order_by(table.c.id).limit(self._batch_size)
            return connection.execute(query).all()

    def _mark_sent(self, ids: list[int]) -> None:
        table = self._table
        with transaction(self._engine, write=True) as connection:
            connection.execute(table.update().where(table.c.id.in_(ids)).values(sent_at=datetime.now(UTC)))


def _event(row: sa.Row[tuple[object, ...]]) -> Event:
    mapping = row._mapping
    payload_class = payload_type(str(mapping["event_type"]))
    if payload_class is None:
        raise ValueError(f"outbox row {mapping['id']}: unknown event type {mapping['event_type']!r}")
    payload = payload_class()
    payload.ParseFromString(bytes(mapping["payload"]))
    return Event(
        key=str(mapping["event_key"]),
        payload=payload,
        source=str(mapping["source"]),
        id=str(mapping["event_id"]),
        time=mapping["event_time"],
        trace=json.loads(str(mapping["trace"])),
    )


def relay_task(
    settings: ServiceSettings,
    engine: Engine,
    table: sa.Table,
    topics: Sequence[Topic],
    *,
    signer: EventSigner | None = None,
) -> BackgroundTask:
    """A service's outbox relay as a background task: a publisher of its own, started whenever the broker is
    there (changes are kept in the outbox meanwhile), the service's topics created before every batch."""

    async def relay() -> None:
        publisher = await started_publisher(settings, signer=signer)

        async def prepare() -> None:
            await ensure_topics(settings.kafka_bootstrap, topics, timeout_s=10, security=settings.kafka_security)

        try:
            await OutboxRelay(engine, table, publisher, prepare=prepare).run()
        finally:
            await publisher.stop()

    return relay
