"""At-least-once event consumption: commit after the handler, dead letters for what can never be handled.

Per record, in partition order: decode the envelope, route by payload type, skip an event id already handled
(for handlers that ask for it), call the handler (retrying transient failures with backoff), then commit that
record's offset + 1. A record that is not an event, or whose handler fails for good, is copied unchanged to
`<topic>.dlq` with the error in headers before its offset is committed, so one poison record never blocks a
partition. A crash anywhere before the commit means the record is delivered again: handlers must be idempotent.

A batch handler (`register_batch`) gets each fetch's consecutive events of its type from one partition in one
call, with their positions: it applies them in one transaction of its own, storing each partition's next offset
with the state they changed, and hands the consumer those positions to resume from (`PositionStore`), so its
effect is exactly once whatever Kafka redelivers. A batch that fails for good is retried one event at a time, so
only the poison event is dead-lettered. As OpenTelemetry's messaging conventions have it for batch processing, a
run handled together has one CONSUMER span, a child of its first event's producer span with links to the others'
(up to the link limit): a span per event cost more than handling a small one (a label).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Collection, Iterator, Sequence
from types import TracebackType
from typing import Any, Literal, Self, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from opentelemetry import trace

from modelyard.events.envelope import EnvelopeError, Event, Position
from modelyard.events.signing import TrustedKeys
from modelyard.events.topics import Topic
from modelyard.kafka.admission import admit
from modelyard.kafka.dead_letters import DeadLetters
from modelyard.kafka.handling import (
    BatchHandler,
    Delivery,
    PermanentError,
    PositionStore,
    RecentIds,
    RetryPolicy,
    SeenEvents,
    TransientError,
)
from modelyard.kafka.recovery import GroupRecovery, RebalanceListener
from modelyard.kafka.routing import BlockingHandler, Handler, Route, Routes
from modelyard.kafka.security import PLAINTEXT, KafkaSecurity
from modelyard.kafka.spans import ConsumerSpans
from modelyard.kafka.topic_guard import DEFAULT_INTERVAL_S
from modelyard.settings import ServiceSettings

# What handlers and services import from here (the types live in `modelyard.kafka.handling` and `.routing`).
__all__ = [
    "BatchHandler",
    "BlockingHandler",
    "Delivery",
    "EventConsumer",
    "Handler",
    "PermanentError",
    "PositionStore",
    "RecentIds",
    "RetryPolicy",
    "SeenEvents",
    "TransientError",
]

log = logging.getLogger(__name__)

Outcome = Literal["handled", "duplicate", "ignored", "dead_lettered"]

Decoded = tuple[Any, Event | EnvelopeError]  # an aiokafka ConsumerRecord and what it holds


class EventConsumer(Routes):
    """Runs handlers over topics as one member of a consumer group; `async with EventConsumer(...) as c:`."""

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topics: Sequence[Topic | str],
        *,
        auto_offset_reset: Literal["earliest", "latest"] = "earliest",
        retry: RetryPolicy | None = None,
        max_records: int = 100,
        seen_events: SeenEvents | None = None,
        seen_capacity: int = 10_000,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        rebalance_timeout_ms: int = 60_000,
        max_poll_interval_ms: int = 300_000,
        idempotence: bool = False,
        client_id: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        positions: PositionStore | None = None,
        max_partition_fetch_bytes: int = 1_048_576,
        trusted_keys: TrustedKeys | None = None,
        security: KafkaSecurity = PLAINTEXT,
        commit_timeout_s: float = 5.0,
        rejoin_after_failed_commits: int = 3,
        topic_check_interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        """A commit that the broker does not settle within `commit_timeout_s` counts as failed (the records are
        delivered again); after `rejoin_after_failed_commits` failures in a row the member rejoins its group, and
        meanwhile `delivering` reports the consumer degraded. Topics are verified every `topic_check_interval_s`
        (see `modelyard.kafka.recovery`)."""
        super().__init__()
        self.group_id = group_id
        # Events on signed topics are verified against these before any handler sees them; none: all refused.
        self._trusted = trusted_keys or TrustedKeys()
        self._topics = [t.name if isinstance(t, Topic) else t for t in topics]
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            **security.client_options(),
            group_id=group_id,
            client_id=client_id or group_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            # How long the group waits for a member to finish its record in hand and rejoin (aiokafka would
            # use the session timeout, too short for a handler that is retrying).
            rebalance_timeout_ms=rebalance_timeout_ms,
            max_poll_interval_ms=max_poll_interval_ms,
            max_partition_fetch_bytes=max_partition_fetch_bytes,
        )
        self._positions = positions
        self._dead_letters = DeadLetters(
            bootstrap, group_id, idempotence=idempotence, client_id=client_id, security=security
        )
        self._recovery = GroupRecovery(
            bootstrap,
            group_id,
            topics,
            self._rejoin,
            commit_timeout_s=commit_timeout_s,
            rejoin_after_failed_commits=rejoin_after_failed_commits,
            topic_check_interval_s=topic_check_interval_s,
            security=security,
        )
        self._retry = retry or RetryPolicy()
        self._max_records = max_records
        self._seen_events = seen_events
        self._recent = RecentIds(seen_capacity)
        self._spans = ConsumerSpans(trace.get_tracer(__name__, tracer_provider=tracer_provider), group_id)
        # Held while one record is handled and committed: a revoke or stop waits for it, never cuts it in half.
        self._processing = asyncio.Lock()
        self._revocations = 0  # bumped on every revoke so a fetched batch is not handled past a rebalance
        self._handled: dict[TopicPartition, int] = {}  # next offset to commit, per partition
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: ServiceSettings, group_id: str, topics: Sequence[Topic | str], **options: Any
    ) -> EventConsumer:
        return cls(
            settings.kafka_bootstrap,
            group_id,
            topics,
            idempotence=settings.kafka_idempotence,
            client_id=settings.service_name,
            security=settings.kafka_security,
            topic_check_interval_s=settings.kafka_topic_check_interval_s,
            **options,
        )

    @property
    def assignment(self) -> frozenset[tuple[str, int]]:
        """(topic, partition) pairs this member currently owns."""
        return frozenset((tp.topic, tp.partition) for tp in self._consumer.assignment())

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("EventConsumer already started")
        await self._dead_letters.start()
        try:
            await self._consumer.start()
        except BaseException:
            await self._dead_letters.stop()
            raise
        self._consumer.subscribe(self._topics, listener=RebalanceListener(self._on_revoked, self._on_assigned))
        self._recovery.guard.start()
        self._task = asyncio.create_task(self._run(), name=f"consumer {self.group_id}")

    async def joined(self) -> None:
        """Return once this member owns partitions and knows the offset it reads each from: every record produced
        after that is delivered. With auto_offset_reset="latest", one produced before may not be, so a service
        that also reads the current state elsewhere (serving's startup plans) awaits this first."""
        if self._task is None:
            raise RuntimeError("EventConsumer not started")
        while True:
            if self._task.done():
                _raise_failure(self._task)
                raise RuntimeError(f"consumer {self.group_id} stopped before joining")
            assigned = self._consumer.assignment()
            if assigned:
                try:
                    for tp in assigned:
                        await self._consumer.position(tp)  # waits until the offset reset has resolved it
                    return
                except IllegalStateError:
                    pass  # revoked by a rebalance meanwhile: wait for the next assignment
            await asyncio.sleep(0.05)  # aiokafka offers no event for "assigned"

    async def stop(self, grace_s: float = 10.0) -> None:
        """Let the record in hand finish and commit (up to `grace_s`), then leave the group and close.

        A record cut off by the grace period stays uncommitted and is delivered again. Re-raises what made the
        runner fail, if it did, after closing.
        """
        task, self._task = self._task, None
        if task is None:
            return
        await self._recovery.guard.stop()
        acquired = False
        try:
            async with asyncio.timeout(grace_s):
                acquired = await self._processing.acquire()
        except TimeoutError:
            log.warning(
                "consumer %s: in-flight record abandoned after %.1fs; it will be redelivered", self.group_id, grace_s
            )
        task.cancel()  # between records (or cut off): nothing half-done remains to lose
        await asyncio.wait([task])
        try:
            if acquired:
                await self._commit(set(self._handled))
                self._processing.release()
        finally:
            try:
                await self._consumer.stop()
            except (KafkaError, asyncio.CancelledError) as exc:
                # Closed while the broker is away, aiokafka raises its pending fetch's error, or that fetch's own
                # CancelledError (not ours: re-raised when this task is the one being cancelled).
                current = asyncio.current_task()
                if isinstance(exc, asyncio.CancelledError) and current is not None and current.cancelling():
                    raise
                log.warning("consumer %s: closed without the broker: %r", self.group_id, exc)
            await self._dead_letters.stop()
        _raise_failure(task)

    async def delivering(self) -> bool:
        """A degradation check: see `GroupRecovery.delivering`."""
        return await self._recovery.delivering()

    async def wait(self) -> None:
        """Return when the runner has stopped; raise what made it fail, if it did (for a supervisor)."""
        if self._task is not None:
            task = self._task
            await asyncio.wait([task])
            _raise_failure(task)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _run(self) -> None:
        while True:
            fetched = await self._consumer.getmany(timeout_ms=1_000, max_records=self._max_records)
            if not fetched:
                self._recovery.idle()
            revocations = self._revocations
            # Each partition's records arrive in offset order and are handled in that order: one at a time, or
            # a run of them by a batch handler.
            for tp, records in fetched.items():
                for run in self._runs(records):
                    async with self._processing:
                        if self._revocations != revocations:
                            break  # the new owner resumes from the last commit; these records are its now
                        await self._process(run)
                        # Commit each record or run: after a crash only the one in hand comes again.
                        self._handled[tp] = run[-1][0].offset + 1
                        await self._commit({tp})

    def _runs(self, records: Sequence[Any]) -> Iterator[list[Decoded]]:
        """The records, decoded, one by one but for consecutive events that go to the same batch handler."""
        run: list[Decoded] = []
        for record in records:
            decoded = admit(record, self._trusted)
            batch = self._batch_route(decoded)
            if run and (batch is None or batch is not self._batch_route(run[0][1])):
                yield run
                run = []
            run.append((record, decoded))
            if batch is None:
                yield run
                run = []
        if run:
            yield run

    async def _process(self, run: list[Decoded]) -> None:
        record, decoded = run[0]
        route = self._batch_route(decoded)
        if route is not None:
            await self._process_batch(route, run)
        elif isinstance(decoded, EnvelopeError):
            with self._spans.record(record, None) as span:
                await self._dead_letters.send(record, decoded, span)
                span.set_attribute("modelyard.outcome", "dead_lettered")
        else:
            with self._spans.record(record, decoded) as span:
                outcome = await self._dispatch(record, decoded, span)
                span.set_attribute("modelyard.outcome", outcome)

    async def _process_batch(self, route: Route, run: list[Decoded]) -> None:
        handler = cast(BatchHandler, route.batch)
        events = [(record, event) for record, event in run if isinstance(event, Event)]
        span = self._spans.batch(events)
        deliveries = [Delivery(e, Position(r.topic, r.partition, r.offset), span) for r, e in events]
        outcome = "abandoned"
        try:
            call = functools.partial(asyncio.to_thread, handler, deliveries)
            if await self._retry.run(call, events[0][1], span) is None:
                outcome = "handled"
                return
            # Which event can never be handled? One at a time, each in a span of its own, so the others go through.
            outcome = "isolated"
            for (record, event), delivery in zip(events, deliveries, strict=True):
                with self._spans.record(record, event) as alone_span:
                    alone = functools.partial(
                        asyncio.to_thread, handler, [Delivery(event, delivery.position, alone_span)]
                    )
                    error = await self._retry.run(alone, event, alone_span)
                    if error is not None:
                        await self._dead_letters.send(record, error, alone_span)
                    alone_span.set_attribute("modelyard.outcome", "handled" if error is None else "dead_lettered")
        finally:
            span.set_attribute("modelyard.outcome", outcome)
            span.end()

    async def _dispatch(self, record: Any, event: Event, span: trace.Span) -> Outcome:
        route = self._routes.get(type(event.payload))
        if route is None:
            return "ignored"  # topics carry several event types; a consumer registers the ones it needs
        if route.idempotent and await self._already_handled(event.id):
            return "duplicate"
        call = cast(Handler, route.call)
        error = await self._retry.run(lambda: call(event), event, span)
        if error is not None:
            await self._dead_letters.send(record, error, span)
            return "dead_lettered"
        if route.idempotent:
            self._recent.add(event.id)
            if self._seen_events is not None:
                await self._seen_events.add(event.id)
        return "handled"

    async def _already_handled(self, event_id: str) -> bool:
        if event_id in self._recent:
            return True
        if self._seen_events is not None and await self._seen_events.contains(event_id):
            self._recent.add(event_id)
            return True
        return False

    async def _commit(self, partitions: Collection[TopicPartition]) -> None:
        offsets = {tp: self._handled[tp] for tp in partitions if tp in self._handled}
        if not offsets:
            return
        await self._recovery.commit(lambda: self._consumer.commit(offsets), offsets)
        for tp, offset in offsets.items():
            if self._handled.get(tp) == offset:
                del self._handled[tp]

    def _rejoin(self) -> None:
        # Subscribing anew makes aiokafka revoke, rejoin and fetch fresh metadata; the records in hand are
        # committed by the revoke or delivered again.
        self._consumer.subscribe(self._topics, listener=RebalanceListener(self._on_revoked, self._on_assigned))

    async def _on_revoked(self, revoked: Collection[TopicPartition]) -> None:
        """Before partitions move to another member: finish the record in hand and commit what was handled."""
        async with self._processing:
            self._revocations += 1
            await self._commit([tp for tp in revoked if tp in self._handled])

    async def _on_assigned(self, assigned: Collection[TopicPartition]) -> None:
        """Resume newly assigned partitions from the positions the handler stored, if it stores them."""
        self._recovery.assigned()
        if self._positions is None or not assigned:
            return
        positions = self._positions
        stored = await asyncio.to_thread(positions.resume_positions, [(tp.topic, tp.partition) for tp in assigned])
        resumed = {tp: offset for tp in assigned if (offset := stored.get((tp.topic, tp.partition))) is not None}
        for tp, offset in resumed.items():
            self._consumer.seek(tp, offset)  # at once: the fetcher starts while this callback still runs
        lost = await self._recovery.lost(resumed)
        if lost:
            await asyncio.to_thread(positions.restart_positions, [(tp.topic, tp.partition) for tp in lost])
            for tp in lost:
                self._consumer.seek(tp, 0)


def _raise_failure(task: asyncio.Task[None]) -> None:
    error = None if task.cancelled() else task.exception()
    if error is not None:
        raise error
