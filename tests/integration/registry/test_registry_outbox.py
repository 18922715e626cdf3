"""The transactional outbox end to end: changes made while the broker is down reach Kafka once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from modelyard.contracts.events.v1 import registry_events_pb2
from modelyard.events import envelope
from modelyard.events.envelope import Event
from modelyard.events.topics import REGISTRY_EVENTS
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.embedded import EmbeddedBroker
from modelyard.kafka.producer import EventPublisher
from modelyard.registry.adapters.sql import schema
from modelyard.registry.bootstrap import build
from modelyard.registry.handlers import NewVersion
from modelyard.registry.testing import ALICE, chunked, registry_settings
from modelyard.sql.outbox import OutboxRelay, pending_count
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)


async def _events_for(bootstrap: str, key: str, count: int, timeout_s: float = 30.0) -> list[str]:
    """The types of the first `count` events with `key` on the registry topic, read from the beginning."""
    consumer = AIOKafkaConsumer(REGISTRY_EVENTS.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    found: list[str] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(found) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        if record.key != key.encode():
                            continue  # other tests' events, and the poison some put on the topic on purpose
                        event = envelope.decode(record.key, record.value, record.headers)
                        if event.key == key:
                            found.append(event.type.rsplit(".", 1)[1])
    finally:
        await consumer.stop()
    return found


@pytest.mark.timeout(120)
async def test_events_made_while_the_broker_is_down_arrive_when_it_returns(
    tmp_path: Path, onnx_models: dict[str, TrainedModel]
) -> None:
    # A broker of our own, which we can stop and start again on the same port (memory only: topics vanish).
    broker = EmbeddedBroker()
    broker.start()
    registry = build(registry_settings(tmp_path))
    publisher = EventPublisher(broker.bootstrap, request_timeout_ms=3_000)
    await publisher.start()

    async def prepare() -> None:
        await ensure_topics(broker.bootstrap, [REGISTRY_EVENTS], timeout_s=5)

    relay = OutboxRelay(registry.engine, schema.outbox, publisher, prepare=prepare, max_backoff_s=0.5)
    relaying = asyncio.create_task(relay.run())
    handlers = registry.handlers
    try:
        await asyncio.to_thread(handlers.create_model, ALICE, "before")
        assert await _events_for(broker.bootstrap, "before", 1) == ["RegisteredModelCreated"]

        broker.stop()
        model = onnx_models["iris"]
        await asyncio.to_thread(handlers.create_model, ALICE, "during")
        await handlers.upload_artifact(ALICE, "application/onnx", model.digest, 0, chunked(model.onnx))
        await asyncio.to_thread(handlers.create_version, ALICE, NewVersion("during", model.digest))
        await asyncio.sleep(1.0)  # the relay tries and fails meanwhile
        assert pending_count(registry.engine, schema.outbox) == 2

        broker.start()
        await _until(lambda: pending_count(registry.engine, schema.outbox) == 0, "the relay to catch up")
        assert await _events_for(broker.bootstrap, "during", 2) == ["RegisteredModelCreated", "ModelVersionRegistered"]
    finally:
        relaying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relaying
        await publisher.stop()
        broker.stop()
        registry.engine.dispose()


def test_no_event_for_a_rolled_back_change(tmp_path: Path) -> None:
    registry = build(registry_settings(tmp_path))
    with pytest.raises(RuntimeError), registry.store.transaction(write=True) as tx:
        tx.record(Event.new("x", registry_events_pb2.RegisteredModelCreated(model_name="x"), "registry"))
        raise RuntimeError("the change failed after its event was written")
    assert pending_count(registry.engine, schema.outbox) == 0
