"""The embedded broker restarted under a running producer and consumer (issue 17, fault 1): it comes back with no
topics, clients re-create them by accident with the broker's default partitions, and a consumer that resumes from
its stored positions would wait past the end of the new, empty partitions for ever. The topic guard re-creates the
catalogue's topics with their partitions, the consumer rejoins and reads them from the start, and the outage shows
as degraded while it lasts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterator, Sequence

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from modelyard.contracts.events.v1 import serving_events_pb2 as srv
from modelyard.events.envelope import Event
from modelyard.events.topics import SERVING_PREDICTIONS
from modelyard.kafka.admin import ensure_topics, repair_topics
from modelyard.kafka.consumer import Delivery, EventConsumer
from modelyard.kafka.embedded import EmbeddedBroker
from modelyard.kafka.producer import EventPublisher

pytestmark = pytest.mark.integration

CHECK_S = 0.3  # the guards' interval: short, so the test waits little


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def partition_counts(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        metadata = (await admin._get_cluster_metadata(None)).to_object()  # naming topics would auto-create them
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in metadata["topics"]}


def batch(model: str) -> Event:
    return Event.new(model, srv.PredictionBatch(model_name=model), "serving")


class Positions:
    """The monitor's way of reading the stream: each partition's next offset kept with what it applied."""

    def __init__(self) -> None:
        self.next: dict[tuple[str, int], int] = {}
        self.applied: list[str] = []
        self.restarted: list[tuple[str, int]] = []

    def resume_positions(self, partitions: Collection[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return {p: self.next[p] for p in partitions if p in self.next}

    def restart_positions(self, partitions: Collection[tuple[str, int]]) -> None:
        self.restarted += partitions
        self.next.update(dict.fromkeys(partitions, 0))

    def apply(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            if d.position.offset >= self.next.get(d.position[:2], 0):
                self.applied.append(d.event.key)
                self.next[d.position[:2]] = d.position.offset + 1


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as broker:  # its own: the test restarts it
        yield broker


async def test_after_a_broker_restart_topics_come_back_with_their_partitions_and_the_stream_flows_again(
    broker: EmbeddedBroker,
) -> None:
    await ensure_topics(broker.bootstrap, [SERVING_PREDICTIONS], timeout_s=10)
    positions = Positions()
    consumer = EventConsumer(
        broker.bootstrap,
        "restart-test",
        [SERVING_PREDICTIONS],
        positions=positions,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=500,
        commit_timeout_s=1.0,
        topic_check_interval_s=CHECK_S,
    )
    consumer.register_batch(srv.PredictionBatch, positions.apply)
    before = [f"before-{i}" for i in range(12)]  # keys spread over the six partitions
    after = [f"after-{i}" for i in range(12)]
    async with EventPublisher(broker.bootstrap, topic_check_interval_s=CHECK_S) as publisher, consumer:
        await consumer.joined()
        await publisher.publish_many(SERVING_PREDICTIONS, [batch(key) for key in before])
        await until(lambda: set(before) <= set(positions.applied), "the events sent before the restart")
        assert await consumer.delivering()

        broker.stop()
        degraded = await _degraded_within(consumer, 15.0)
        assert "cannot verify topics" in degraded
        broker.start()

        # The clients reconnect and (seen with Tansu) re-create the topic with 4 partitions; the guards repair it.
        deadline = time.monotonic() + 30
        while (await partition_counts(broker.bootstrap)).get(SERVING_PREDICTIONS.name) != 6:
            assert time.monotonic() < deadline, await partition_counts(broker.bootstrap)
            await asyncio.sleep(0.1)
        counts = await partition_counts(broker.bootstrap)
        assert counts[SERVING_PREDICTIONS.dlq] == 1
        # Published once the consumer says it recovered and owns partitions again: records published while its group
        # still rebalanced after the repair were seen, rarely, to be skipped (docs/architecture.md, Tansu's quirks).
        await _recovered_within(consumer, 30.0)
        await consumer.joined()

        for key in after:  # one by one, each retried until the broker has it
            while True:
                try:
                    await publisher.publish(SERVING_PREDICTIONS, batch(key))
                    break
                except Exception:
                    await asyncio.sleep(0.1)
        await until(lambda: set(after) <= set(positions.applied), "the events sent after the restart")
        assert await consumer.delivering()
    # The stored positions were past the end of the re-created partitions: read from their start instead.
    assert positions.restarted
    assert await repair_topics(broker.bootstrap, [SERVING_PREDICTIONS]) == []


async def _degraded_within(consumer: EventConsumer, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await consumer.delivering()
        except ConnectionError as exc:
            return str(exc)
        assert time.monotonic() < deadline, "the consumer never reported the broker's absence"
        await asyncio.sleep(0.1)


async def _recovered_within(consumer: EventConsumer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            assert await consumer.delivering()
            return
        except ConnectionError as exc:
            assert time.monotonic() < deadline, f"still degraded: {exc}"
        await asyncio.sleep(0.1)
