"""Deployment plans from outside: the DeploymentPlan contract, governance's `ListDeploymentPlans` over gRPC, and
a plan file as governance's stand-in (running without governance)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
from google.protobuf import json_format

from modelyard.contracts.events.v1 import common_pb2
from modelyard.contracts.governance.v1 import governance_service_pb2 as governance_pb
from modelyard.contracts.governance.v1 import governance_service_pb2_grpc as governance_grpc
from modelyard.peers import TRANSIENT_CODES, PeerClient
from modelyard.serving.domain.errors import PlanSourceError
from modelyard.serving.domain.model import Plan, VersionRef
from modelyard.tls import ClientTls, grpc_aio_channel


def version_from_message(ref: common_pb2.ModelVersionRef) -> VersionRef:
    return VersionRef(ref.model_name, ref.version, ref.digest)


def plan_from_message(plan: common_pb2.DeploymentPlan) -> Plan:
    """Raises ValueError for a plan that names no primary or mixes models."""
    if not plan.HasField("primary") or not plan.primary.digest:
        raise ValueError(f"deployment plan for {plan.model_name!r} has no primary version with a digest")
    return Plan(
        model=plan.model_name,
        revision=plan.revision,
        primary=version_from_message(plan.primary),
        canary=version_from_message(plan.canary) if plan.HasField("canary") else None,
        canary_weight=plan.canary_weight,
        shadow=version_from_message(plan.shadow) if plan.HasField("shadow") else None,
    )


class PlanFile:
    """Plans in a JSON file, `{"plans": [<DeploymentPlan in protobuf JSON>, ...]}`, read on every call so an
    edited file is picked up by the next load. A missing file means no plans."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def plans(self) -> list[Plan]:
        return await asyncio.to_thread(self._read)

    def _read(self) -> list[Plan]:
        if not self.path.exists():
            return []
        document = json.loads(self.path.read_text())
        return [
            plan_from_message(json_format.ParseDict(entry, common_pb2.DeploymentPlan())) for entry in document["plans"]
        ]

    async def close(self) -> None:
        pass


class GovernancePlans(PeerClient):
    """The current plan of every deployed model, from `modelyard.governance.v1.GovernanceService/
    ListDeploymentPlans`: what governance decided, so a restarted replica comes back serving it."""

    def __init__(
        self, address: str, token: str | None = None, timeout_s: float = 10.0, tls: ClientTls | None = None
    ) -> None:
        super().__init__(address, token, timeout_s, tls)
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> governance_grpc.GovernanceServiceStub:
        if self._channel is None:  # created on first use, on the loop that uses it
            self._channel = grpc_aio_channel(self.address, self.tls)
        return governance_grpc.GovernanceServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def plans(self) -> list[Plan]:
        """Raises PlanSourceError, transient when governance may answer later."""
        try:
            response = await self._stub().ListDeploymentPlans(
                governance_pb.ListDeploymentPlansRequest(), metadata=self._metadata, timeout=self.timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            message = f"governance {self.address}: {exc.code().name}: {exc.details()}"
            raise PlanSourceError(message, transient=exc.code() in TRANSIENT_CODES) from exc
        return [plan_from_message(plan) for plan in response.plans]

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


def plan_file_entry(plan: common_pb2.DeploymentPlan) -> dict[str, object]:
    """A plan as the plan file holds it."""
    return json_format.MessageToDict(plan)
