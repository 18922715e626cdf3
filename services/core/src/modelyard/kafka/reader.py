"""Reading a whole topic once, outside any consumer group: what a log of record (the audit checkpoints) needs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from modelyard.events import envelope
from modelyard.events.envelope import Event
from modelyard.events.topics import Topic
from modelyard.kafka.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)


async def read_to_end(
    bootstrap: str, topic: Topic, *, timeout_s: float = 30.0, security: KafkaSecurity = PLAINTEXT
) -> list[Event]:
    """Every event on `topic` from its first offset to the end it has now, partition by partition in offset order.
    Nothing is committed. A record that is not a readable event is skipped (and logged): on a hostile bus, what
    a reader trusts is decided by what the events say (a signature), not by their presence."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **security.client_options())
    await reader.start()
    try:
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        reader.assign(partitions)
        ends = await reader.end_offsets(partitions)
        await reader.seek_to_beginning(*partitions)
        events: list[Event] = []
        async with asyncio.timeout(timeout_s):
            while await _behind(reader, partitions, ends):
                for records in (await reader.getmany(*partitions, timeout_ms=200)).values():
                    events += [event for record in records if (event := _event(topic, record)) is not None]
        return events
    finally:
        await reader.stop()


async def _behind(reader: AIOKafkaConsumer, partitions: list[TopicPartition], ends: dict[TopicPartition, int]) -> bool:
    for partition in partitions:
        if await reader.position(partition) < ends[partition]:
            return True
    return False


def _event(topic: Topic, record: Any) -> Event | None:  # record: an aiokafka ConsumerRecord
    try:
        return envelope.decode(record.key, record.value, record.headers)
    except Exception as exc:  # whatever a malformed record raises, it is not an event to read
        log.warning("%s offset %s: skipped, not a readable event: %r", topic.name, record.offset, exc)
        return None
