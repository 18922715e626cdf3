"""An attacker who can write to Kafka but holds no governance key cannot change what serving serves.

The whole serving service on the real broker; its plan file stands in for governance (`ListDeploymentPlans`), and
each genuine decision here is published signed with the governance test key after the "governance" plan file
records it, as governance commits a plan before it relays the decision.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelyard.contracts.events.v1 import common_pb2
from modelyard.contracts.events.v1 import governance_events_pb2 as gov
from modelyard.contracts.events.v1 import serving_events_pb2 as srv
from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.contracts.inference import grpc_service_pb2_grpc as pb_grpc
from modelyard.events.envelope import Event
from modelyard.events.signing import key_id
from modelyard.events.topics import GOVERNANCE_DECISIONS, SERVING_STATUS
from modelyard.kafka.producer import EventPublisher
from modelyard.runtime import Service
from modelyard.serving.testing import ModelRepository, infer_request, plan, variant
from modelyard.testing.models import TrainedModel
from modelyard.testing.signing import GOVERNANCE_KEY, read_records, signed_publisher

pytestmark = pytest.mark.integration
MODEL = "breast_cancer"


DECISIONS = [TopicPartition(GOVERNANCE_DECISIONS.name, p) for p in range(GOVERNANCE_DECISIONS.partitions)]


async def end_offsets(bootstrap: str) -> dict[TopicPartition, int]:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        return dict(await reader.end_offsets(DECISIONS))
    finally:
        await reader.stop()


async def caught_up(bootstrap: str, group: str, before: dict[TopicPartition, int]) -> None:
    """Wait until consumer group `group` has committed every record on the decisions topic published since
    `before` (the end offsets when the replica started; earlier tests' records are not its to read): everything
    published before this call has been handled (or dead-lettered) by then."""
    ends = await end_offsets(bootstrap)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        grown = [tp for tp in DECISIONS if ends[tp] > before[tp]]

        async def behind() -> bool:
            return any([(await reader.committed(tp) or 0) < ends[tp] for tp in grown])

        async with asyncio.timeout(30):
            while await behind():  # noqa: ASYNC110  (the broker's commits have no event to await)
                await asyncio.sleep(0.05)
    finally:
        await reader.stop()


def decision(
    primary: common_pb2.ModelVersionRef, revision: int, source: str = "governance"
) -> tuple[Event, common_pb2.DeploymentPlan]:
    deployment = plan(primary, revision=revision)
    approved = gov.DeploymentApproved(request_id=f"request-{uuid.uuid4().hex[:6]}", plan=deployment)
    return Event.new(MODEL, approved, source), deployment


async def test_forged_replayed_and_jumping_decisions_never_change_what_is_served(
    service: Service, kafka_bootstrap: str, repository: ModelRepository, breast_cancer: TrainedModel
) -> None:
    v1 = plan(repository.add(MODEL, 1, breast_cancer.onnx)).primary
    v2 = repository.add(MODEL, 2, variant(breast_cancer.onnx, "v2"))
    v3 = repository.add(MODEL, 3, variant(breast_cancer.onnx, "v3"))
    group = f"serving-{service.settings.replica}"  # type: ignore[attr-defined]
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}")
    stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]

    async def answered_by() -> str:
        response = await stub.ModelInfer(infer_request(MODEL, breast_cancer.sample[:1], uuid.uuid4().hex))
        return str(response.model_version)

    async def served() -> list[str]:
        return list((await stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL))).versions)

    before = await end_offsets(kafka_bootstrap)  # the replica reads from the latest offset: nothing earlier
    stranger = Ed25519PrivateKey.generate()
    forger = EventPublisher(kafka_bootstrap)
    governance = signed_publisher(kafka_bootstrap, GOVERNANCE_KEY)
    async with channel, forger, governance, signed_publisher(kafka_bootstrap, stranger) as impostor:
        assert await served() == ["1"] and await answered_by() == "1"

        # 1. Forgeries: unsigned, signed by an unknown key, and an unsigned revision 1000. All dead-lettered.
        unsigned, _ = decision(v2, 2)
        foreign, _ = decision(v2, 2)
        lockout, _ = decision(v2, 1000)
        await forger.publish(GOVERNANCE_DECISIONS, unsigned)
        await impostor.publish(GOVERNANCE_DECISIONS, foreign)
        await forger.publish(GOVERNANCE_DECISIONS, lockout)
        await caught_up(kafka_bootstrap, group, before)
        assert await served() == ["1"] and await answered_by() == "1"
        reasons = {
            dict(r.headers)["ce_id"].decode(): dict(r.headers)["modelyard_dlq_error"].decode()
            for r in await read_records(kafka_bootstrap, GOVERNANCE_DECISIONS.dlq)
            if dict(r.headers)["modelyard_dlq_group"] == group.encode()
        }
        unsigned_reason = (
            "unsigned event on modelyard.governance.decisions, which only carries events signed by governance"
        )
        assert reasons == {
            unsigned.id: unsigned_reason,
            foreign.id: f"signed by key {key_id(stranger.public_key())!r}, not a trusted key of governance "
            f"({key_id(GOVERNANCE_KEY.public_key())})",
            lockout.id: unsigned_reason,
        }

        # 2. A validly signed plan that jumps to revision 1000 (a governance bug, or a stolen key) is not taken on
        # its word: serving asks governance, whose plan still says v1 at revision 1, and keeps serving that.
        jump, _ = decision(v3, 1000)
        await governance.publish(GOVERNANCE_DECISIONS, jump)
        await caught_up(kafka_bootstrap, group, before)
        assert await served() == ["1"] and await answered_by() == "1"

        async def decide(version: common_pb2.ModelVersionRef, revision: int) -> Event:
            """What governance does: commit the plan (the plan file here), then publish the signed decision."""
            event, committed = decision(version, revision)
            repository.write_plans(committed)
            await governance.publish(GOVERNANCE_DECISIONS, event)
            await caught_up(kafka_bootstrap, group, before)
            return event

        # 3. Real decisions still apply afterwards: no revision counter moved.
        approved = await decide(v2, 2)
        assert await served() == ["2"] and await answered_by() == "2"
        await decide(v1, 3)
        assert await served() == ["1"]

        # 4. A replay of the old signed plan (the very record, same id and signature) does not bring v2 back.
        (old,) = [
            r
            for r in await read_records(kafka_bootstrap, GOVERNANCE_DECISIONS.name)
            if dict(r.headers)["ce_id"] == approved.id.encode()
        ]
        await forger.send_record(GOVERNANCE_DECISIONS.name, old.key, old.value, list(old.headers))
        await caught_up(kafka_bootstrap, group, before)
        assert await served() == ["1"] and await answered_by() == "1"

        # 5. And the next real decision is enacted.
        await decide(v2, 4)
        assert await served() == ["2"] and await answered_by() == "2"

    # v3 (named only by the jumping plan) was never even loaded by this replica; v1 and v2 were.
    replica = service.settings.replica  # type: ignore[attr-defined]
    loaded = {
        payload.version.version
        for r in await read_records(kafka_bootstrap, SERVING_STATUS.name)
        if dict(r.headers)["ce_type"] == srv.ModelLoaded.DESCRIPTOR.full_name.encode()
        and (payload := srv.ModelLoaded.FromString(r.value)).replica == replica
    }
    assert loaded == {1, 2}
