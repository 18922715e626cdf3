"""Register -> promote -> checks -> two approvals (self-approval refused) -> DeploymentApproved on the topic ->
alias moved; then a critical alert on the canary -> RollbackOrdered back to the previous version. Real registry
(gRPC, SQLite), real broker, real skl2onnx model measured with onnxruntime and fairlearn."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY

from modelyard.auth import AuthSettings, Role, TokenGrant
from modelyard.contracts.events.v1 import common_pb2, governance_events_pb2, monitor_events_pb2, registry_events_pb2
from modelyard.contracts.governance.v1 import governance_service_pb2 as gpb
from modelyard.contracts.governance.v1 import governance_service_pb2_grpc as gpb_grpc
from modelyard.contracts.registry.v1 import registry_service_pb2 as rpb
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as rpb_grpc
from modelyard.events import topics
from modelyard.events.envelope import Event
from modelyard.events.signing import key_id
from modelyard.governance import bootstrap as governance_bootstrap
from modelyard.governance.testing import governance_settings
from modelyard.kafka.consumer import EventConsumer
from modelyard.kafka.producer import EventPublisher
from modelyard.registry.testing import RunningService, digest_of, registry_settings
from modelyard.testing.models import LABEL_COLUMN, TrainedModel
from modelyard.testing.signing import MONITOR_KEY, read_records, signed_publisher, trusted

pytestmark = pytest.mark.integration

TOKENS = {name: f"{name}-token-0123456789abcdefghij" for name in ("alice", "bob", "carol", "dave", "governance")}
ROLES = {
    "alice": {Role.PUBLISHER, Role.APPROVER},  # registers the versions
    "bob": {Role.PUBLISHER, Role.APPROVER},  # requests the promotions
    "carol": {Role.APPROVER},
    "dave": {Role.APPROVER},
    "governance": {Role.SERVICE},
}
AUTH = AuthSettings(
    tokens={TOKENS[n]: TokenGrant(principal=n, roles=frozenset(r)) for n, r in ROLES.items()}, allow_anonymous=False
)
POLICY = """
version: flow-test
promotions:
  - models: "*"
    alias: production
    checks:
      lineage_metrics: {accuracy: {min: 0.9}}
      evaluation:
        label_column: target
        metrics: {accuracy: {min: 0.9}, roc_auc: {min: 0.9}}
        importance: {rows: 20, background_rows: 20, permutations: 1, max_feature_share: 0.9}
      latency_budget_ms: 250
      fairness: {sensitive_column: group, max_demographic_parity_difference: 0.6, max_equalized_odds_difference: 0.6}
      signature_compatible: true
      model_card: [model_details, intended_use, training_data, evaluation_data, metrics]
    approvals: {count: 2, role: approver}
    rollout: {canary_weight: 0.25, observation_s: 600}
rollbacks:
  - min_severity: critical
    action: rollback
"""


def auth(name: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {TOKENS[name]}")]


def with_groups(csv: bytes) -> bytes:
    """The evaluation dataset: the model's reference data plus a sensitive column for the fairness gate."""
    lines = csv.decode().splitlines()
    rows = [f"{line},{'a' if i % 2 else 'b'}" for i, line in enumerate(lines[1:])]
    return "\n".join([lines[0] + ",group", *rows]).encode() + b"\n"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[RunningService]:
    settings = registry_settings(
        tmp_path_factory.mktemp("registry"), auth=AUTH, kafka_bootstrap=kafka_bootstrap, check_interval_s=0.05
    )
    with RunningService(settings) as running:
        yield running


def register(address: str, model: TrainedModel, name: str) -> None:
    """Two versions of `name` (same bytes: what differs is their fate), with lineage and card tags."""
    with grpc.insecure_channel(address) as channel:
        stub = rpb_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        md = auth("alice")
        stub.CreateRegisteredModel(
            rpb.CreateRegisteredModelRequest(
                name=name,
                description="breast cancer screening aid",
                tags={"intended_use": "second opinion for radiologists"},
            ),
            metadata=md,
        )
        evaluation = with_groups(model.reference_csv)
        for data, media in ((model.onnx, "application/onnx"), (evaluation, "text/csv")):
            header = rpb.UploadArtifactRequest.Header(media_type=media, digest=digest_of(data))
            chunks = [rpb.UploadArtifactRequest(header=header), rpb.UploadArtifactRequest(chunk=data)]
            stub.UploadArtifact(iter(chunks), metadata=md)
        for _ in range(2):
            lineage = rpb.Lineage(
                training_datasets=["sklearn:breast_cancer"],
                evaluation_datasets=[digest_of(evaluation)],
                metrics={"accuracy": 0.97},
            )
            request = rpb.CreateModelVersionRequest(
                model_name=name, artifact_digest=model.digest, label_column=LABEL_COLUMN, lineage=lineage
            )
            created = stub.CreateModelVersion(request, metadata=md).model_version
            get = rpb.GetModelVersionRequest(model_name=name, version=created.version)
            deadline = time.monotonic() + 20
            while (
                stub.GetModelVersion(get, metadata=md).model_version.status
                != registry_events_pb2.MODEL_VERSION_STATUS_READY
            ):
                assert time.monotonic() < deadline, "registry checks did not finish"
                time.sleep(0.05)


def alias_version(address: str, name: str) -> int:
    with grpc.insecure_channel(address) as channel:
        stub = rpb_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        request = rpb.ResolveAliasRequest(model_name=name, alias="production")
        return int(stub.ResolveAlias(request, metadata=auth("alice")).version.version)


def move_alias(address: str, name: str, version: int) -> None:
    """As a principal with the service role: what governance's own move would be, done behind its back."""
    with grpc.insecure_channel(address) as channel:
        stub = rpb_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        request = rpb.SetAliasRequest(model_name=name, alias="production", version=version, reason="test")
        stub.SetAlias(request, metadata=auth("governance"))


@pytest.fixture
async def decisions(kafka_bootstrap: str) -> AsyncIterator[asyncio.Queue[Event]]:
    """Every event on the decisions topic, as serving would see them."""
    queue: asyncio.Queue[Event] = asyncio.Queue()
    consumer = EventConsumer(
        kafka_bootstrap, f"test-{uuid.uuid4().hex[:8]}", [topics.GOVERNANCE_DECISIONS], trusted_keys=trusted()
    )
    for payload in topics.GOVERNANCE_DECISIONS.payloads:
        consumer.register(payload, queue.put)
    async with consumer:
        yield queue


async def next_decision(queue: asyncio.Queue[Event], kind: type[Any], match: Callable[[Any], bool]) -> Any:
    async with asyncio.timeout(60):  # generous: the machine is shared; the waits end as soon as the event arrives
        while True:
            event = await queue.get()
            if isinstance(event.payload, kind) and match(event.payload):
                return event.payload


async def until(check: Callable[[], Any]) -> Any:
    """Poll `check` until it returns something truthy (a readiness probe would be better; there is none)."""
    async with asyncio.timeout(60):  # generous: the machine is shared; the waits end as soon as the event arrives
        while True:
            if result := await check():
                return result
            await asyncio.sleep(0.1)


async def code_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    return error.value.code(), error.value.details() or ""


async def test_promotion_approval_and_rollback(
    registry: RunningService,
    kafka_bootstrap: str,
    tmp_path: Path,
    onnx_models: dict[str, TrainedModel],
    decisions: asyncio.Queue[Event],
) -> None:
    name = f"cancer-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(register, registry.grpc_address, onnx_models["breast-cancer"], name)
    (tmp_path / "policy.yaml").write_text(POLICY)
    settings = governance_settings(
        tmp_path,
        auth=AUTH,
        kafka_bootstrap=kafka_bootstrap,
        registry_address=registry.grpc_address,
        registry_token=TOKENS["governance"],
        work_interval_s=0.1,
        alias_reconcile_interval_s=0.2,
    )
    service = governance_bootstrap.service(governance_bootstrap.build(settings))
    async with service.running(), grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}") as channel:
        gov = gpb_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]

        async def promote(version: int) -> str:
            request = gpb.RequestPromotionRequest(model_name=name, version=version, target_alias="production")
            request_id = (await gov.RequestPromotion(request, metadata=auth("bob"))).request.request_id
            get = gpb.GetDecisionRequest(request_id=request_id)

            async def checked() -> gpb.PromotionRequest | None:
                found = (await gov.GetDecision(get, metadata=auth("carol"))).request
                return None if found.state == "checking" else found

            decided = await until(checked)
            assert decided.state == "awaiting_approval", decided.reason
            assert {c.name for c in decided.checks if c.passed} == {
                "lineage_metrics",
                "evaluation",
                "explainability",
                "latency",
                "fairness",
                "signature",
                "model_card",
            }
            return str(request_id)

        first = await promote(1)
        approve = gpb.ApproveRequest(request_id=first)
        assert await code_of(gov.Approve(approve, metadata=auth("bob"))) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "bob requested this promotion and may not approve it (rule sod-requester-cannot-approve)",
        )
        code, details = await code_of(gov.Approve(approve, metadata=auth("alice")))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "sod-registrant-cannot-approve" in details
        await gov.Approve(approve, metadata=auth("carol"))
        assert (await code_of(gov.Approve(approve, metadata=auth("carol"))))[0] == grpc.StatusCode.ALREADY_EXISTS
        assert (await gov.Approve(approve, metadata=auth("dave"))).request.state == "approved"

        approved = await next_decision(
            decisions, governance_events_pb2.DeploymentApproved, lambda d: d.request_id == first
        )
        assert approved.plan.primary.version == 1 and approved.plan.primary.digest.startswith("sha256:")
        assert list(approved.approvers) == ["carol", "dave"]
        assert await asyncio.to_thread(alias_version, registry.grpc_address, name) == 1

        # The second version goes out as a canary; a critical alert on it rolls back to version 1.
        second = await promote(2)
        for approver in ("carol", "dave"):
            await gov.Approve(gpb.ApproveRequest(request_id=second), metadata=auth(approver))
        plan = (await gov.GetDeploymentPlan(gpb.GetDeploymentPlanRequest(model_name=name), metadata=auth("carol"))).plan
        assert (plan.primary.version, plan.canary.version, plan.canary_weight) == (1, 2, 0.25)

        def alert(model: str, incident: str) -> Event:
            payload = monitor_events_pb2.IncidentChanged(
                incident_id=incident,
                state=monitor_events_pb2.IncidentChanged.STATE_OPENED,
                version=common_pb2.ModelVersionRef(model_name=model, version=2),
                signal=monitor_events_pb2.SIGNAL_PERFORMANCE,
                severity=monitor_events_pb2.SEVERITY_CRITICAL,
            )
            return Event.new(model, payload, "monitor")

        # Forged incidents (unsigned; signed by a key governance does not trust) never roll anything back: they
        # are dead-lettered with the reason, before the genuine one below is even read.
        stranger = Ed25519PrivateKey.generate()
        async with EventPublisher(kafka_bootstrap) as forger, signed_publisher(kafka_bootstrap, stranger) as impostor:
            await forger.publish(topics.MONITOR_ALERTS, alert(name, "forged-unsigned"))
            await impostor.publish(topics.MONITOR_ALERTS, alert(name, "forged-signed"))
        async with signed_publisher(kafka_bootstrap, MONITOR_KEY) as monitor:
            await monitor.publish(topics.MONITOR_ALERTS, alert(f"unknown-{name}", "stray"))
            await monitor.publish(topics.MONITOR_ALERTS, alert(name, "inc-1"))

        rollback = await next_decision(
            decisions, governance_events_pb2.RollbackOrdered, lambda r: r.plan.model_name == name
        )
        assert rollback.incident_id == "inc-1" and rollback.rolled_back.version == 2
        groups = {f"{settings.consumer_group_prefix}-{group}".encode() for group in ("rollback", "audit")}

        async def refused_by_both_consumers() -> list[dict[str, bytes]] | None:
            # The rollback consumer refused them before it read the genuine alert (same partition); the audit
            # consumer reads every topic at its own pace: a forged event never becomes a fact of the audit trail.
            letters = [
                dict(r.headers)
                for r in await read_records(kafka_bootstrap, topics.MONITOR_ALERTS.dlq)
                if r.key == name.encode()
            ]
            return letters if {h["modelyard_dlq_group"] for h in letters} == groups else None

        dead_letters = await until(refused_by_both_consumers)
        refused = {
            h["ce_id"]: h["modelyard_dlq_error"].decode()
            for h in dead_letters
            if h["modelyard_dlq_group"] == f"{settings.consumer_group_prefix}-rollback".encode()
        }
        trusted_id, stranger_id = key_id(MONITOR_KEY.public_key()), key_id(stranger.public_key())
        assert sorted(refused.values()) == [
            f"signed by key {stranger_id!r}, not a trusted key of monitor ({trusted_id})",
            "unsigned event on modelyard.monitor.alerts, which only carries events signed by monitor",
        ]
        refusals = {"topic": topics.MONITOR_ALERTS.name, "reason": "SignatureError"}
        rollback_group = {"group": f"{settings.consumer_group_prefix}-rollback", **refusals}
        assert REGISTRY.get_sample_value("modelyard_events_dead_lettered_total", rollback_group) == 2
        assert rollback.plan.primary.version == 1 and not rollback.plan.HasField("canary")
        assert REGISTRY.get_sample_value("modelyard_governance_rollbacks_total", {"model": name}) == 1
        plan = (await gov.GetDeploymentPlan(gpb.GetDeploymentPlanRequest(model_name=name), metadata=auth("carol"))).plan
        assert plan.primary.version == 1 and not plan.HasField("canary")
        assert await asyncio.to_thread(alias_version, registry.grpc_address, name) == 1

        # An alias that diverges from the plan (moved behind governance's back, or a move lost to a registry
        # outage) is set back to the plan's primary by the reconciliation loop, and counted.
        await asyncio.to_thread(move_alias, registry.grpc_address, name, 2)

        async def alias_back_on_plan() -> bool:
            return await asyncio.to_thread(alias_version, registry.grpc_address, name) == 1

        await until(alias_back_on_plan)

        async def repair_counted() -> bool:  # counted once the reconciliation pass that repaired it returns
            return (REGISTRY.get_sample_value("modelyard_governance_alias_repairs_total", {"model": name}) or 0) >= 1

        await until(repair_counted)

        # The audit trail saw the registry's events too (its consumer reads every topic) and verifies.
        async def registry_events_audited() -> bool:
            listed = await gov.ListAuditEntries(gpb.ListAuditEntriesRequest(model_name=name), metadata=auth("carol"))
            return any(e.kind == "modelyard.events.v1.ModelVersionRegistered" for e in listed.entries)

        await until(registry_events_audited)
        verified = await gov.VerifyAudit(gpb.VerifyAuditRequest(), metadata=auth("carol"))
        assert verified.ok and verified.entries > 5, verified.problem

        card = await gov.GetModelCard(gpb.GetModelCardRequest(model_name=name, version=1), metadata=auth("carol"))
        assert "## Metrics" in card.markdown and "demographic_parity_difference" in card.markdown
        assert "Approved by carol" in card.markdown
        # Global importance measured at promotion: mean |attribution| of every registered feature.
        assert "## Explainability" in card.markdown
        assert "mean |attribution| over 20 evaluation rows" in card.markdown
        explainability = card.markdown.split("## Explainability")[1].split("## ")[0]
        assert all(f"| {f} | " in explainability for f in onnx_models["breast-cancer"].feature_names)
