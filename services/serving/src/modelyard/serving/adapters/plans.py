"""Deployment plans from outside: the DeploymentPlan contract, and a plan file as governance's stand-in."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from google.protobuf import json_format

from modelyard.contracts.events.v1 import common_pb2
from modelyard.serving.domain.model import Plan, VersionRef


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


def plan_file_entry(plan: common_pb2.DeploymentPlan) -> dict[str, object]:
    """A plan as the plan file holds it."""
    return json_format.MessageToDict(plan)
