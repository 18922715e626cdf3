"""Governance's audit consumer records only facts: the event types each topic carries, from the producers the
catalogue names, signed where the topic must be. Everything else is dead-lettered with the reason, and the
audit trail stays as it was. Real broker, real governance service, SQLite."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from modelyard.contracts.events.v1 import common_pb2
from modelyard.contracts.events.v1 import governance_events_pb2 as gov
from modelyard.contracts.events.v1 import registry_events_pb2 as reg
from modelyard.contracts.events.v1 import serving_events_pb2 as srv
from modelyard.events import envelope, topics
from modelyard.events import headers as h
from modelyard.events.envelope import Event
from modelyard.governance import bootstrap as governance_bootstrap
from modelyard.governance.testing import InMemoryCatalog, governance_settings
from modelyard.testing.signing import read_records

pytestmark = pytest.mark.integration


async def test_forged_foreign_and_broken_records_are_dead_lettered_not_audited(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    model = f"audited-{uuid.uuid4().hex[:8]}"
    settings = governance_settings(tmp_path, kafka_bootstrap=kafka_bootstrap)

    def record(payload: object, source: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        return envelope.encode(Event.new(model, payload, source))  # type: ignore[arg-type]

    created = reg.RegisteredModelCreated(model_name=model, owner="ds")
    key, value, headers = record(created, "registry")
    plan = common_pb2.DeploymentPlan(model_name=model, revision=1)
    poison: dict[str, tuple[str, bytes, bytes | None, list[tuple[str, bytes | None]]]] = {
        "unknown source": (topics.REGISTRY_EVENTS.name, *record(created, "mallory")),
        "foreign type": (topics.REGISTRY_EVENTS.name, *record(srv.ModelLoaded(replica="x"), "registry")),
        "null value": (topics.REGISTRY_EVENTS.name, key, None, headers),
        "null header": (topics.REGISTRY_EVENTS.name, key, value, [*headers, ("x-note", None)]),
        "unsigned decision": (
            topics.GOVERNANCE_DECISIONS.name,
            *record(gov.DeploymentApproved(request_id="forged", plan=plan), "governance"),
        ),
    }
    genuine = record(reg.TagsChanged(model_name=model), "registry")

    service = governance_bootstrap.service(governance_bootstrap.build(settings, catalog=InMemoryCatalog()))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    async with service.running():
        await producer.start()
        try:
            for topic, *raw in poison.values():
                await producer.send_and_wait(topic, raw[1], key=raw[0], headers=raw[2])
            await producer.send_and_wait(topics.REGISTRY_EVENTS.name, genuine[1], key=genuine[0], headers=genuine[2])
        finally:
            await producer.stop()
        group = f"{settings.consumer_group_prefix}-audit".encode()

        async def dead_letters() -> dict[tuple[str, int], str]:
            found: dict[tuple[str, int], str] = {}
            for topic in (topics.REGISTRY_EVENTS, topics.GOVERNANCE_DECISIONS):
                for r in await read_records(kafka_bootstrap, topic.dlq):
                    headers = dict(r.headers)
                    if r.key == model.encode() and headers[h.DLQ_CONSUMER_GROUP] == group:
                        found[r.topic, r.offset] = headers[h.DLQ_ERROR].decode()
            return found

        reader = governance_bootstrap.build(
            settings, catalog=InMemoryCatalog()
        ).store  # the same database, read beside the service

        async def genuine_audited() -> bool:
            return any(e.event_id for e in reader.audit_entries(model_name=model))

        async with asyncio.timeout(30):  # the broker's topics have no event to await
            while len(refused := await dead_letters()) < len(poison) or not await genuine_audited():  # noqa: ASYNC110
                await asyncio.sleep(0.1)

    assert sorted(refused.values()) == sorted(
        [
            f"source 'mallory' may not publish on {topics.REGISTRY_EVENTS.name}",
            f"modelyard.events.v1.ModelLoaded is not an event type of {topics.REGISTRY_EVENTS.name}",
            "the record has no value (a tombstone is not an event)",
            "header 'x-note' has no value",
            "unsigned event on modelyard.governance.decisions, which only carries events signed by governance",
        ]
    )
    audited = list(reader.audit_entries(model_name=model))
    assert [(e.kind, e.source) for e in audited] == [("modelyard.events.v1.TagsChanged", "registry")]
