"""Startup plans from governance: real governance and serving services on loopback gRPC, the test broker, SQLite
(governance's registry faked through its bootstrap seam, serving's artifacts in a local model directory)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from modelyard.auth import AuthSettings, Role, TokenGrant
from modelyard.contracts.governance.v1 import governance_service_pb2 as gpb
from modelyard.contracts.governance.v1 import governance_service_pb2_grpc as gpb_grpc
from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.contracts.inference import grpc_service_pb2_grpc as pb_grpc
from modelyard.governance import bootstrap as governance_bootstrap
from modelyard.governance.testing import InMemoryCatalog, facts, governance_settings
from modelyard.kafka.admin import ensure_topics
from modelyard.serving import bootstrap as serving_bootstrap
from modelyard.serving.testing import ModelRepository, infer_request, service_settings, variant, wait_until
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration

BOB = "bob-token-0123456789abcdefghij"
SERVING = "serving-token-0123456789abcdefghij"
AUTH = AuthSettings(
    tokens={
        BOB: TokenGrant(principal="bob", roles=frozenset({Role.PUBLISHER})),
        SERVING: TokenGrant(principal="serving", roles=frozenset({Role.SERVICE})),
    },
    allow_anonymous=False,
)


async def promote(address: str, model: str, version: int) -> None:
    """Ask for `staging` (no approvals in the test policy) and wait until governance has the plan."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = gpb_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
        metadata = (("authorization", f"Bearer {BOB}"),)
        request = gpb.RequestPromotionRequest(model_name=model, version=version, target_alias="staging")
        await stub.RequestPromotion(request, metadata=metadata)
        async with asyncio.timeout(20):
            while True:
                listed = await stub.ListDeploymentPlans(gpb.ListDeploymentPlansRequest(), metadata=metadata)
                versions = {(p.model_name, v.version) for p in listed.plans for v in (p.primary, p.canary)}
                if (model, version) in versions:
                    return
                await asyncio.sleep(0.05)


async def served_versions(stub: pb_grpc.GRPCInferenceServiceStub) -> set[str]:
    index = await stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True))
    return {m.version for m in index.models if m.name == "breast_cancer"}


async def test_a_replica_started_after_an_approval_serves_what_governance_decided(
    tmp_path: Path, kafka_bootstrap: str, breast_cancer: TrainedModel
) -> None:
    await ensure_topics(kafka_bootstrap)
    repository = ModelRepository(tmp_path / "serving")  # artifacts only: no plan file is written
    catalog = InMemoryCatalog()
    for version, artifact in ((1, breast_cancer.onnx), (2, variant(breast_cancer.onnx, "v2"))):
        ref = repository.add("breast_cancer", version, artifact)
        catalog.add(facts("breast_cancer", version))
        catalog.change_digest("breast_cancer", version, ref.digest)
    (tmp_path / "governance").mkdir()
    options = {"auth": AUTH, "kafka_bootstrap": kafka_bootstrap, "work_interval_s": 0.05}
    governance = governance_bootstrap.service(
        governance_bootstrap.build(governance_settings(tmp_path / "governance", **options), catalog=catalog)
    )
    async with governance.running():
        governance_port = governance.grpc.port
        governance_address = f"127.0.0.1:{governance_port}"
        await promote(governance_address, "breast_cancer", 1)  # DeploymentApproved, before serving exists

    # Governance is away when the replica starts: it keeps asking, and is not ready meanwhile.
    serving = serving_bootstrap.service(
        serving_bootstrap.build(
            service_settings(
                repository.root,
                kafka_bootstrap,
                plan_source="governance",
                governance_address=governance_address,
                governance_token=SERVING,
                stream_enabled=False,
            )
        )
    )
    async with serving.running():
        await asyncio.sleep(1.5)  # several fetch attempts: asserting an absence needs a bounded wait
        assert not serving.ready and not serving.failed
        restarted = governance_bootstrap.service(
            governance_bootstrap.build(
                governance_settings(tmp_path / "governance", grpc_port=governance_port, **options), catalog=catalog
            )
        )
        async with (
            restarted.running(),
            grpc.aio.insecure_channel(f"127.0.0.1:{serving.grpc.port}") as channel,
        ):
            await wait_until(lambda: serving.ready)
            stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
            assert await served_versions(stub) == {"1"}
            answer = await stub.ModelInfer(infer_request("breast_cancer", breast_cancer.sample[:2], "after-restart"))
            assert (answer.model_version, answer.id) == ("1", "after-restart")

            # ...and it follows decisions made after it started, from the decisions topic.
            await promote(f"127.0.0.1:{governance_port}", "breast_cancer", 2)
            async with asyncio.timeout(30):
                while await served_versions(stub) != {"2"}:  # noqa: ASYNC110  (state of another process)
                    await asyncio.sleep(0.05)
