"""Rows and JSON columns of the registry's tables <-> domain values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from modelyard.registry.domain.model import AliasMove, Lineage, Signature, TensorSpec


def alias_move(row: sa.Row[Any]) -> AliasMove:
    return AliasMove(
        model_name=row.name,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        moved_by=row.moved_by,
        moved_at=row.moved_at,
        reason=row.reason,
    )


def signature_json(signature: Signature) -> dict[str, Any]:
    def spec(s: TensorSpec) -> dict[str, Any]:
        return {"name": s.name, "element_type": s.element_type, "shape": None if s.shape is None else list(s.shape)}

    return {
        "inputs": [spec(s) for s in signature.inputs],
        "outputs": [spec(s) for s in signature.outputs],
        "opsets": dict(signature.opsets),
        "ir_version": signature.ir_version,
        "producer_name": signature.producer_name,
        "producer_version": signature.producer_version,
    }


def signature(data: Mapping[str, Any]) -> Signature:
    def spec(s: Mapping[str, Any]) -> TensorSpec:
        return TensorSpec(s["name"], s["element_type"], None if s["shape"] is None else tuple(s["shape"]))

    return Signature(
        inputs=tuple(spec(s) for s in data["inputs"]),
        outputs=tuple(spec(s) for s in data["outputs"]),
        opsets=data["opsets"],
        ir_version=data["ir_version"],
        producer_name=data["producer_name"],
        producer_version=data["producer_version"],
    )


def lineage_json(lineage: Lineage) -> dict[str, Any]:
    return {
        "training_datasets": list(lineage.training_datasets),
        "evaluation_datasets": list(lineage.evaluation_datasets),
        "code_revision": lineage.code_revision,
        "parameters": dict(lineage.parameters),
        "metrics": dict(lineage.metrics),
        "environment": dict(lineage.environment),
        "run_id": lineage.run_id,
        "source": lineage.source,
    }


def lineage(data: Mapping[str, Any]) -> Lineage:
    return Lineage(
        training_datasets=tuple(data["training_datasets"]),
        evaluation_datasets=tuple(data["evaluation_datasets"]),
        code_revision=data["code_revision"],
        parameters=data["parameters"],
        metrics=data["metrics"],
        environment=data["environment"],
        run_id=data.get("run_id", ""),  # absent from versions registered before experiment tracking
        source=data.get("source", ""),
    )
