"""The Kafka bus against a real broker: envelope and trace round trip, dead letters, at-least-once delivery,
consumer groups, retries and duplicate suppression. Every test has its own topic and consumer group."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from modelyard.contracts.events.v1 import registry_events_pb2 as reg
from modelyard.events import envelope, topics
from modelyard.events import headers as h
from modelyard.events.envelope import Event
from modelyard.events.topics import Topic
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.consumer import Delivery, EventConsumer, PermanentError, RetryPolicy, TransientError
from modelyard.kafka.producer import EventPublisher, refused_for_good
from modelyard.retry import Backoff
from modelyard.testing.plugin import TestEnvironment, kafka_broker

pytestmark = pytest.mark.integration

NewTopic = Callable[..., Awaitable[Topic]]
Record = Any  # aiokafka's ConsumerRecord


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    """Poll `condition` until it holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.01)


def model_created(name: str) -> Event:
    return Event.new(name, reg.RegisteredModelCreated(model_name=name, owner="ds"), source="test")


def consumer(bootstrap: str, topic: Topic, group: str | None = None, **options: Any) -> EventConsumer:
    # Tansu holds a JoinGroup for about session_timeout / 2 (at least 1 s): short sessions keep tests fast.
    return EventConsumer(
        bootstrap,
        group or f"test-{uuid.uuid4().hex[:12]}",
        [topic],
        session_timeout_ms=2_000,
        heartbeat_interval_ms=200,
        **options,
    )


async def holds(condition: Callable[[], bool], what: str, for_s: float) -> None:
    """Check that `condition` keeps holding for `for_s` (proving something does not happen needs a window)."""
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        assert condition(), what
        await asyncio.sleep(0.01)


async def read_topic(bootstrap: str, topic: str, count: int, timeout_s: float = 10.0) -> list[Record]:
    """Records of `topic` from the beginning (all partitions, no consumer group) until `count` have come."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or {0})]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        records: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < count and time.monotonic() < deadline:
            for batch in (await reader.getmany(timeout_ms=200)).values():
                records.extend(batch)
        return records
    finally:
        await reader.stop()


async def end_offset(bootstrap: str, topic: str, partition: int = 0) -> int:
    # Tansu answers the base offset of the partition's last batch + 1: exact only for a topic written one
    # record per batch, as the dead letters are (each send is awaited).
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await reader.start()
    try:
        tp = TopicPartition(topic, partition)
        return int((await reader.end_offsets([tp]))[tp])
    finally:
        await reader.stop()


async def committed(bootstrap: str, group: str, topic: Topic) -> dict[int, int | None]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(
            group, partitions=[TopicPartition(topic.name, p) for p in range(topic.partitions)]
        )
    finally:
        await admin.close()
    return {tp.partition: (meta.offset if meta.offset >= 0 else None) for tp, meta in offsets.items()}


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> NewTopic:
    async def create(partitions: int = 1) -> Topic:
        topic = Topic(
            f"test.bus.{uuid.uuid4().hex[:12]}",
            partitions=partitions,
            producer="tests",
            summary="a topic of one test",
            payloads=topics.REGISTRY_EVENTS.payloads,
        )
        await ensure_topics(kafka_bootstrap, [topic], timeout_s=10)
        return topic

    return create


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    # A provider per test, handed to the bus explicitly: no global state shared between tests.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def finished(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind == kind]


async def test_ensure_topics_creates_catalogue_and_dead_letter_topics_idempotently(
    test_environment: TestEnvironment,
) -> None:
    # A broker of its own: on the session's broker, another test's producer may already have auto-created a
    # catalogue topic with the broker's default partition count.
    with kafka_broker(test_environment) as bootstrap:
        await ensure_topics(bootstrap)
        await ensure_topics(bootstrap)  # a second `modelyard up` finds them all there

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            names = [t.name for t in topics.ALL] + [t.dlq for t in topics.ALL]
            described = {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(names)}
        finally:
            await admin.close()
    assert described == {t.name: t.partitions for t in topics.ALL} | {t.dlq: topics.DLQ_PARTITIONS for t in topics.ALL}


async def test_envelope_and_trace_context_round_trip_through_the_broker(
    kafka_bootstrap: str, new_topic: NewTopic, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    topic = await new_topic()
    received: list[Event] = []

    async def handle(event: Event) -> None:
        received.append(event)

    bus = consumer(kafka_bootstrap, topic, tracer_provider=provider)
    bus.register(reg.RegisteredModelCreated, handle)
    async with EventPublisher(kafka_bootstrap, tracer_provider=provider) as publisher, bus:
        with provider.get_tracer("test").start_as_current_span("register model") as request:
            sent = Event.new(
                "iris", reg.RegisteredModelCreated(model_name="iris", owner="ds", tags={"team": "a"}), "registry"
            )
            await publisher.publish(topic, sent)
        await until(lambda: bool(finished(exporter, SpanKind.CONSUMER)), "the consumer span")

    [got] = received
    assert (got.id, got.key, got.source, got.type, got.time, got.payload) == (
        sent.id,
        "iris",
        "registry",
        reg.RegisteredModelCreated.DESCRIPTOR.full_name,
        sent.time,
        sent.payload,
    )
    [raw] = await read_topic(kafka_bootstrap, topic.name, 1)
    headers = dict(raw.headers)
    assert raw.key == b"iris"
    assert raw.value == sent.payload.SerializeToString()
    assert {k: headers[k] for k in (h.SPECVERSION, h.ID, h.SOURCE, h.TYPE, h.TIME, h.CONTENT_TYPE)} == {
        h.SPECVERSION: b"1.0",
        h.ID: sent.id.encode(),
        h.SOURCE: b"registry",
        h.TYPE: reg.RegisteredModelCreated.DESCRIPTOR.full_name.encode(),
        h.TIME: sent.time.isoformat().encode(),
        h.CONTENT_TYPE: b"application/protobuf",
    }

    # request -> send (PRODUCER) -> process (CONSUMER): one trace, the consumer under the producer's span.
    [send] = finished(exporter, SpanKind.PRODUCER)
    [process] = finished(exporter, SpanKind.CONSUMER)
    request_context = request.get_span_context()
    assert send.parent is not None and send.parent.span_id == request_context.span_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.context.trace_id == send.context.trace_id == request_context.trace_id
    assert headers[h.TRACEPARENT].decode() == got.trace[h.TRACEPARENT]
    assert f"{send.context.span_id:016x}" in got.trace[h.TRACEPARENT]
    assert process.attributes is not None and process.attributes["modelyard.outcome"] == "handled"


async def test_deliver_reports_each_outcome_and_a_record_too_large_is_refused_for_good(
    kafka_bootstrap: str, new_topic: NewTopic, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    topic = await new_topic()
    oversized = Event.new("m", reg.RegisteredModelCreated(model_name="m", owner="x" * 1_100_000), "test")
    events = [model_created("a"), oversized, model_created("b")]
    async with EventPublisher(kafka_bootstrap, tracer_provider=provider) as publisher:
        first, refused, last = await publisher.deliver(topic, events)
        with pytest.raises(MessageSizeTooLargeError):  # publish_many raises the same error
            await publisher.publish_many(topic, [oversized])

    assert first is None and last is None
    assert isinstance(refused, MessageSizeTooLargeError) and refused_for_good(refused)
    assert not refused_for_good(KafkaConnectionError("broker away"))
    delivered = await read_topic(kafka_bootstrap, topic.name, 2)
    assert [r.key for r in delivered] == [b"a", b"b"]
    errors = [s for s in finished(exporter, SpanKind.PRODUCER) if not s.status.is_ok]
    assert len(errors) == 2 and all(s.attributes["cloudevents.event_id"] == oversized.id for s in errors)  # type: ignore[index]


async def test_poison_records_go_to_the_dead_letter_topic_and_the_consumer_moves_on(
    kafka_bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic()
    good = model_created("good")
    _, payload, event_headers = envelope.encode(model_created("x"))
    unknown_type = [(k, b"modelyard.events.v1.NoSuchEvent" if k == h.TYPE else v) for k, v in event_headers]
    poison: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = [
        (b"no-headers", b"\xff\x00 not protobuf", []),
        (b"unknown-type", payload, unknown_type),
        (b"bad-payload", b"\x0a\xff truncated", event_headers),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for key, value, headers in poison:
            await producer.send_and_wait(topic.name, value, key=key, headers=headers)
    finally:
        await producer.stop()

    received: list[Event] = []

    async def handle(event: Event) -> None:
        received.append(event)

    bus = consumer(kafka_bootstrap, topic)
    bus.register(reg.RegisteredModelCreated, handle)
    async with EventPublisher(kafka_bootstrap) as publisher, bus:
        await publisher.publish(topic, good)
        await until(lambda: bool(received), "the good event after the poison")
    assert [e.id for e in received] == [good.id]

    dead = await read_topic(kafka_bootstrap, topic.dlq, 3)
    assert [(r.key, r.value) for r in dead] == [(k, v) for k, v, _ in poison]
    for offset, (record, (_, _, original_headers)) in enumerate(zip(dead, poison, strict=True)):
        assert list(record.headers[: len(original_headers)]) == original_headers
        extra = dict(record.headers[len(original_headers) :])
        assert extra[h.DLQ_ERROR_TYPE] == b"EnvelopeError"
        assert extra[h.DLQ_ERROR]
        assert extra[h.DLQ_ORIGINAL_TOPIC] == topic.name.encode()
        assert extra[h.DLQ_ORIGINAL_PARTITION] == b"0"
        assert extra[h.DLQ_ORIGINAL_OFFSET] == str(offset).encode()
        assert extra[h.DLQ_CONSUMER_GROUP] == bus.group_id.encode()
    assert b"unknown event type" in dict(dead[1].headers)[h.DLQ_ERROR]
    assert await committed(kafka_bootstrap, bus.group_id, topic) == {0: 4}  # poison committed, not retried


class SimulatedCrash(BaseException):
    """Stands for the process dying mid-record: nothing in the consumer may catch it."""


@pytest.mark.parametrize("crash", ["handler dies", "stop grace expires"])
async def test_a_record_handled_but_not_committed_is_delivered_again_after_restart(
    kafka_bootstrap: str, new_topic: NewTopic, crash: str
) -> None:
    topic = await new_topic()
    group = f"test-{uuid.uuid4().hex[:12]}"
    first, second = model_created("a"), model_created("a")
    before_crash: list[str] = []
    stuck = asyncio.Event()  # never set: the handler hangs until the stop cuts it off

    async def handle_then_crash(event: Event) -> None:
        before_crash.append(event.id)
        if event.id == second.id:
            if crash == "handler dies":
                raise SimulatedCrash
            await stuck.wait()

    doomed = consumer(kafka_bootstrap, topic, group)
    doomed.register(reg.RegisteredModelCreated, handle_then_crash)
    async with EventPublisher(kafka_bootstrap) as publisher:
        await publisher.publish_many(topic, [first, second])
    await doomed.start()
    await until(lambda: second.id in before_crash, "the second event to reach the doomed handler")
    if crash == "handler dies":
        with pytest.raises(SimulatedCrash):
            await doomed.stop()  # the runner died; stop closes without committing and says why
    else:
        await doomed.stop(grace_s=0)
    assert before_crash == [first.id, second.id]
    assert await committed(kafka_bootstrap, group, topic) == {0: 1}  # the first one only

    after_restart: list[str] = []

    async def handle(event: Event) -> None:
        after_restart.append(event.id)

    restarted = consumer(kafka_bootstrap, topic, group)
    restarted.register(reg.RegisteredModelCreated, handle)
    async with restarted:
        await until(lambda: bool(after_restart), "redelivery after restart")
    assert after_restart == [second.id]  # the uncommitted record again, the committed one not
    assert await committed(kafka_bootstrap, group, topic) == {0: 2}


async def test_two_members_of_a_group_share_partitions_and_see_each_record_once(
    kafka_bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=4)
    group = f"test-{uuid.uuid4().hex[:12]}"
    seen: dict[str, list[str]] = {"a": [], "b": []}
    members = {}
    for name in seen:

        async def handle(event: Event, name: str = name) -> None:
            seen[name].append(event.id)

        members[name] = consumer(kafka_bootstrap, topic, group)
        members[name].register(reg.RegisteredModelCreated, handle)

    everything = frozenset((topic.name, p) for p in range(topic.partitions))

    def shared() -> bool:
        a, b = members["a"].assignment, members["b"].assignment
        return bool(a) and bool(b) and not a & b and a | b == everything

    events = [model_created(f"model-{i}") for i in range(40)]
    async with members["a"], members["b"], EventPublisher(kafka_bootstrap) as publisher:
        await until(shared, "both members to own a share of the partitions")
        await publisher.publish_many(topic, events)
        await until(lambda: len(seen["a"]) + len(seen["b"]) >= len(events), "every record")

    assert seen["a"] and seen["b"]
    assert sorted(seen["a"] + seen["b"]) == sorted(e.id for e in events)  # none lost, none twice
    # Every partition committed up to its end: a restart of the group would redeliver nothing.
    ends: dict[int, int | None] = dict.fromkeys(range(topic.partitions))
    for record in await read_topic(kafka_bootstrap, topic.name, len(events)):
        ends[record.partition] = record.offset + 1
    assert await committed(kafka_bootstrap, group, topic) == ends


async def test_a_rebalance_waits_for_the_record_in_hand_and_hands_over_without_duplicates(
    kafka_bootstrap: str, new_topic: NewTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = await new_topic(partitions=2)
    group = f"test-{uuid.uuid4().hex[:12]}"
    in_hand, more = model_created("m"), model_created("m")  # same key: same partition, in this order
    handled: list[tuple[str, str]] = []
    release = asyncio.Event()

    def member(name: str) -> EventConsumer:
        async def handle(event: Event) -> None:
            handled.append((name, event.id))
            if event.id == in_hand.id:
                await release.wait()

        bus = consumer(kafka_bootstrap, topic, group, rebalance_timeout_ms=10_000)
        bus.register(reg.RegisteredModelCreated, handle)
        return bus

    first, second = member("first"), member("second")
    revoking = asyncio.Event()
    on_revoked = first._on_revoked

    async def observed(revoked: Any) -> None:
        if revoked:
            revoking.set()
        await on_revoked(revoked)

    monkeypatch.setattr(first, "_on_revoked", observed)  # observe only: the real callback still runs
    async with EventPublisher(kafka_bootstrap) as publisher:
        await publisher.publish_many(topic, [in_hand, more])
        async with first:
            await until(lambda: ("first", in_hand.id) in handled, "the first member to hold the record")
            async with second:
                await asyncio.wait_for(revoking.wait(), 15)  # the join of `second` revokes `first`'s partitions
                # Unblocked, Tansu completes a join in about 1 s; this one waits for the record in hand.
                await holds(lambda: not second.assignment, "no partition moves while a record is in hand", 2.5)
                release.set()
                everything = frozenset((topic.name, p) for p in range(topic.partitions))
                await until(lambda: first.assignment | second.assignment == everything, "the new assignment")
                last = [model_created(f"after-{i}") for i in range(10)]
                await publisher.publish_many(topic, last)
                await until(lambda: len({i for _, i in handled}) == 12, "every record")

    ids = [i for _, i in handled]
    assert sorted(ids) == sorted([in_hand.id, more.id, *(e.id for e in last)])  # each exactly once
    assert handled[0] == ("first", in_hand.id)


async def test_transient_failures_are_retried_and_permanent_ones_dead_lettered(
    kafka_bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic()
    attempts: dict[str, int] = {}
    handled: list[str] = []

    async def handle(event: Event) -> None:
        name = event.key
        attempts[name] = attempts.get(name, 0) + 1
        if name == "flaky" and attempts[name] < 3:
            raise TransientError("registry briefly unavailable")
        if name == "down":
            raise TransientError("registry down for good")
        if name == "rejected":
            raise PermanentError("version 7 does not exist")
        if name == "bug":
            raise KeyError("a bug is not transient")
        handled.append(name)

    bus = consumer(kafka_bootstrap, topic, retry=RetryPolicy(max_attempts=3, backoff=Backoff(first_s=0.01, max_s=0.05)))
    bus.register(reg.RegisteredModelCreated, handle)
    events = [model_created(name) for name in ("flaky", "rejected", "down", "bug", "ok")]
    async with EventPublisher(kafka_bootstrap) as publisher, bus:
        await publisher.publish_many(topic, events)
        await until(lambda: "ok" in handled, "the last event")

    assert handled == ["flaky", "ok"]
    assert attempts == {"flaky": 3, "rejected": 1, "down": 3, "bug": 1, "ok": 1}
    dead = await read_topic(kafka_bootstrap, topic.dlq, 3)
    assert [(r.key, dict(r.headers)[h.DLQ_ERROR_TYPE]) for r in dead] == [
        (b"rejected", b"PermanentError"),
        (b"down", b"TransientError"),
        (b"bug", b"KeyError"),
    ]
    assert [dict(r.headers)[h.ID] for r in dead] == [events[i].id.encode() for i in (1, 2, 3)]
    assert await end_offset(kafka_bootstrap, topic.dlq) == 3  # "flaky" never reached the dead letters


class SeenInMemory:
    """A SeenEvents store as a service would back it with its database."""

    def __init__(self, *ids: str) -> None:
        self.ids = set(ids)

    async def contains(self, event_id: str) -> bool:
        return event_id in self.ids

    async def add(self, event_id: str) -> None:
        self.ids.add(event_id)


async def test_a_duplicate_event_id_is_a_no_op_for_an_idempotent_handler(
    kafka_bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic()
    duplicated = model_created("dup")
    handled_before_restart = model_created("old")
    last = model_created("last")
    tags = Event.new("dup", reg.TagsChanged(model_name="dup", version=1, tags={"stage": "qa"}), "test")
    store = SeenInMemory(handled_before_restart.id)
    idempotent_calls: list[str] = []
    plain_calls: list[str] = []

    async def create(event: Event) -> None:
        idempotent_calls.append(event.id)

    async def tag(event: Event) -> None:
        plain_calls.append(event.id)

    bus = consumer(kafka_bootstrap, topic, seen_events=store)
    bus.register(reg.RegisteredModelCreated, create, idempotent=True)
    bus.register(reg.TagsChanged, tag)  # not flagged: it sees every delivery
    async with EventPublisher(kafka_bootstrap) as publisher, bus:
        await publisher.publish_many(topic, [duplicated, tags, duplicated, handled_before_restart, tags, last])
        await until(lambda: last.id in idempotent_calls, "the last event")

    assert idempotent_calls == [duplicated.id, last.id]
    assert plain_calls == [tags.id, tags.id]
    assert {duplicated.id, last.id} <= store.ids


async def test_a_cpu_bound_handler_runs_in_a_worker_thread_inside_the_consumer_span(
    kafka_bootstrap: str, new_topic: NewTopic, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    topic = await new_topic()
    calls: list[tuple[int, int]] = []

    def score(event: Event) -> None:
        calls.append((threading.get_ident(), trace.get_current_span().get_span_context().span_id))

    bus = consumer(kafka_bootstrap, topic, tracer_provider=provider)
    bus.register(reg.RegisteredModelCreated, score, cpu_bound=True)
    async with EventPublisher(kafka_bootstrap) as publisher, bus:
        await publisher.publish(topic, model_created("heavy"))
        await until(lambda: bool(finished(exporter, SpanKind.CONSUMER)), "the consumer span")

    [(thread, span_id)] = calls
    [process] = finished(exporter, SpanKind.CONSUMER)
    assert thread != threading.get_ident()
    assert span_id == process.context.span_id


class PositionsInMemory:
    """A batch handler's own store of applied events and next offsets (what a database transaction would hold)."""

    def __init__(self, positions: dict[tuple[str, int], int]) -> None:
        self.positions = positions
        self.applied: list[str] = []
        self.batches: list[int] = []
        self.asked: list[list[tuple[str, int]]] = []

    def resume_positions(self, partitions: Collection[tuple[str, int]]) -> dict[tuple[str, int], int]:
        self.asked.append(sorted(partitions))
        return {p: self.positions[p] for p in partitions if p in self.positions}

    def restart_positions(self, partitions: Collection[tuple[str, int]]) -> None:
        self.positions.update(dict.fromkeys(partitions, 0))

    def apply(self, deliveries: Sequence[Delivery]) -> None:
        if any(d.event.key == "poison" for d in deliveries):
            raise PermanentError("poison in the batch")
        fresh = [d for d in deliveries if d.position.offset >= self.positions.get(d.position[:2], 0)]
        self.applied += [d.event.key for d in fresh]
        self.batches.append(len(fresh))
        for d in fresh:
            self.positions[d.position[:2]] = d.position.offset + 1


async def test_a_batch_handler_gets_runs_of_events_resumes_from_its_positions_and_isolates_poison(
    kafka_bootstrap: str, new_topic: NewTopic, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    topic = await new_topic()
    names = [f"m{i}" for i in range(12)]
    events = [model_created(n) for n in names[:6]] + [model_created("poison")] + [model_created(n) for n in names[6:]]
    tags = Event.new("t", reg.TagsChanged(model_name="t", version=1, tags={"k": "v"}), "test")
    # The handler's store says the first two events were applied (say, before a crash that lost the group commit).
    store = PositionsInMemory({(topic.name, 0): 2})
    plain: list[str] = []

    async def tag(event: Event) -> None:
        plain.append(event.key)

    bus = consumer(kafka_bootstrap, topic, positions=store, tracer_provider=provider)
    bus.register_batch(reg.RegisteredModelCreated, store.apply)
    bus.register(reg.TagsChanged, tag)
    async with EventPublisher(kafka_bootstrap, tracer_provider=provider) as publisher:
        await publisher.publish_many(topic, [*events[:9], tags, *events[9:]])
        async with bus:
            await until(lambda: store.applied[-1:] == [names[-1]], "the last event")

    assert store.asked == [[(topic.name, 0)]]
    assert store.applied == names[2:]  # resumed at offset 2; the poison alone was dead-lettered
    assert plain == ["t"]
    assert max(store.batches) > 1, "consecutive events reach the handler together"
    [dead] = await read_topic(kafka_bootstrap, topic.dlq, 1)
    assert dead.key == b"poison" and dict(dead.headers)[h.DLQ_ORIGINAL_OFFSET] == b"6"
    assert await committed(kafka_bootstrap, bus.group_id, topic) == {0: 14}
    # A run handled together has one span, under its first event's producer span and linked to the others'; the
    # run with the poison was retried one event at a time, each in its own span.
    spans = finished(exporter, SpanKind.CONSUMER)
    runs = [s for s in spans if "messaging.batch.message_count" in (s.attributes or {})]
    alone = [s for s in spans if s not in runs and s.attributes["cloudevents.event_type"] != tags.type]  # type: ignore[index]
    assert sum(s.attributes["messaging.batch.message_count"] for s in runs) == 11  # type: ignore[index,misc]  # from offset 2
    assert {s.attributes["modelyard.outcome"] for s in runs} <= {"handled", "isolated"}  # type: ignore[index]
    isolated = [s for s in runs if s.attributes["modelyard.outcome"] == "isolated"]  # type: ignore[index]
    assert len(isolated) == 1 and len(alone) == isolated[0].attributes["messaging.batch.message_count"]  # type: ignore[index]
    assert [s.attributes["modelyard.outcome"] for s in alone].count("dead_lettered") == 1  # type: ignore[index]
    sends = {s.context.span_id for s in finished(exporter, SpanKind.PRODUCER)}
    for run in runs:
        assert run.parent is not None and run.parent.span_id in sends  # the first event's producer span
        assert len(run.links) == run.attributes["messaging.batch.message_count"] - 1  # type: ignore[index,operator]
        assert all(link.context.span_id in sends for link in run.links)
