"""Bus logic that needs no broker: the backoff schedule, the bounded memory of handled ids, registration and
publish guards."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import UnknownTopicOrPartitionError

from modelyard.contracts.events.v1 import governance_events_pb2 as gov
from modelyard.contracts.events.v1 import registry_events_pb2 as reg
from modelyard.events import topics
from modelyard.events.envelope import Event
from modelyard.kafka.consumer import EventConsumer, RecentIds, RetryPolicy
from modelyard.kafka.producer import EventPublisher
from modelyard.retry import Backoff

pytestmark = pytest.mark.unit


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    policy = RetryPolicy(backoff=Backoff(first_s=0.2, max_s=1.0), jitter=0)
    assert [policy.delay_s(n) for n in range(1, 6)] == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])


def test_jitter_stays_within_its_band() -> None:
    policy = RetryPolicy(backoff=Backoff(first_s=1.0, max_s=10.0), jitter=0.1)
    assert policy.delay_s(1, rand=lambda: 0.0) == pytest.approx(0.9)
    assert policy.delay_s(1, rand=lambda: 0.5) == pytest.approx(1.0)
    assert policy.delay_s(1, rand=lambda: 1.0) == pytest.approx(1.1)


@pytest.mark.parametrize(
    "options", [{"max_attempts": 0}, {"backoff": Backoff(first_s=-1.0)}, {"jitter": 1.0}, {"jitter": -0.1}]
)
def test_nonsensical_retry_policies_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**options)  # type: ignore[arg-type]


def test_recent_ids_forget_the_least_recently_seen_first() -> None:
    recent = RecentIds(capacity=2)
    recent.add("a")
    recent.add("b")
    assert "a" in recent  # touching "a" makes "b" the oldest
    recent.add("c")
    assert "a" in recent and "c" in recent and "b" not in recent
    assert len(recent) == 2


async def test_a_cpu_bound_handler_must_be_a_plain_function() -> None:
    consumer = EventConsumer("127.0.0.1:9", "group", [topics.REGISTRY_EVENTS])

    async def coroutine_handler(event: Event) -> None: ...

    with pytest.raises(TypeError):
        consumer.register(reg.ModelVersionRegistered, coroutine_handler, cpu_bound=True)  # type: ignore[call-overload]


async def test_one_handler_per_event_type() -> None:
    consumer = EventConsumer("127.0.0.1:9", "group", [topics.REGISTRY_EVENTS])

    async def handler(event: Event) -> None: ...

    consumer.register(reg.ModelVersionRegistered, handler)
    with pytest.raises(ValueError):
        consumer.register(reg.ModelVersionRegistered, handler, idempotent=True)


async def test_publishing_an_event_a_catalogue_topic_does_not_carry_is_refused() -> None:
    publisher = EventPublisher("127.0.0.1:9")
    approved = Event.new("iris", gov.DeploymentApproved(), source="test")
    with pytest.raises(ValueError, match="does not carry"):
        await publisher.publish(topics.REGISTRY_EVENTS, approved)


class _StuckCommits:
    """Stands in for aiokafka's consumer: commits fail (as for a partition the broker lost) or hang, until told
    otherwise; subscriptions (a rejoin) are counted."""

    def __init__(self) -> None:
        self.failure: BaseException | None = UnknownTopicOrPartitionError()
        self.hang = False
        self.subscriptions = 0

    async def commit(self, offsets: object) -> None:
        if self.hang:
            await asyncio.Event().wait()
        if self.failure is not None:
            raise self.failure

    def subscribe(self, topics: object, listener: object) -> None:
        self.subscriptions += 1


async def test_failing_commits_are_bounded_degrade_the_consumer_and_make_it_rejoin() -> None:
    consumer = EventConsumer(
        "127.0.0.1:9", "g", [topics.SERVING_PREDICTIONS], commit_timeout_s=0.05, rejoin_after_failed_commits=3
    )
    fake = _StuckCommits()
    consumer._consumer = fake  # type: ignore[assignment]
    partition = TopicPartition(topics.SERVING_PREDICTIONS.name, 0)

    async def commit(offset: int) -> None:
        consumer._handled[partition] = offset
        await consumer._commit({partition})

    await commit(1)
    fake.hang, fake.failure = True, None
    await commit(2)  # would wait for ever without the bound
    assert fake.subscriptions == 0
    with pytest.raises(ConnectionError, match="2 commits failed in a row"):
        await consumer.delivering()
    await commit(3)
    assert fake.subscriptions == 1  # the third failure in a row: rejoin
    assert partition not in consumer._handled  # left to be delivered again, not retried at the head

    fake.hang = False
    await commit(4)
    assert await consumer.delivering()


async def test_an_idle_consumer_rejoins_once_after_a_failed_commit_and_recovers_at_its_assignment() -> None:
    # A seldom-written topic: no later commit comes to succeed, so without the rejoin the consumer would stay
    # degraded until the next record.
    consumer = EventConsumer("127.0.0.1:9", "g", [topics.GOVERNANCE_DECISIONS], commit_timeout_s=0.05)
    fake = _StuckCommits()
    consumer._consumer = fake  # type: ignore[assignment]
    recovery = consumer._recovery
    recovery.idle()
    assert fake.subscriptions == 0  # nothing failed: an idle consumer is left alone

    partition = TopicPartition(topics.GOVERNANCE_DECISIONS.name, 0)
    consumer._handled[partition] = 1
    await consumer._commit({partition})
    with pytest.raises(ConnectionError, match="1 commits failed in a row"):
        await consumer.delivering()
    recovery.idle()
    recovery.idle()
    assert fake.subscriptions == 1  # once per failure streak, not at every empty fetch

    recovery.assigned()
    assert await consumer.delivering()
