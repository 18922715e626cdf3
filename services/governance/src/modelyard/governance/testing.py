"""Test doubles and fixtures for governance tests at every level: an in-memory catalog (the registry's part),
an evaluator with fixed numbers, principals, governance instances on SQLite and PostgreSQL, and the attacks on the
audit trail of someone with database access but not the signing key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelyard.auth import Principal, Role
from modelyard.governance.adapters.sql import schema
from modelyard.governance.bootstrap import GovernanceParts, build
from modelyard.governance.config import GovernanceSettings
from modelyard.governance.domain.audit import AuditEntry, chain_entry
from modelyard.governance.domain.checks import Measurements
from modelyard.governance.domain.errors import NotFound
from modelyard.governance.domain.model import Signature, TensorSpec, VersionFacts, VersionRef
from modelyard.governance.domain.policy import EvaluationCheck, FairnessCheck
from modelyard.testing.signing import GOVERNANCE_KEY, MONITOR_PUBLIC, seed_hex

ALICE = Principal("alice", frozenset({Role.PUBLISHER}))  # registers versions
BOB = Principal("bob", frozenset({Role.PUBLISHER, Role.APPROVER}))  # requests promotions
CAROL = Principal("carol", frozenset({Role.APPROVER}))
DAVE = Principal("dave", frozenset({Role.APPROVER}))
EVE = Principal("eve", frozenset({Role.VIEWER}))

SIGNATURE = Signature(
    inputs=(TensorSpec("X", "FLOAT", ("N", 4)),),
    outputs=(TensorSpec("label", "INT64", ("N",)), TensorSpec("probabilities", "FLOAT", ("N", 2))),
)
CARD_TAGS = {
    "intended_use": "scoring loan applications",
    "factors": "applicant age group",
    "ethical_considerations": "may disadvantage young applicants",
    "mitigation": "fairness gate on age group",
    "caveats": "trained on 2024 data only",
}

POLICY = """
version: test-1
promotions:
  - models: "*"
    alias: production
    checks:
      lineage_metrics: {accuracy: {min: 0.9}}
      signature_compatible: true
      model_card: [model_details, intended_use, training_data]
    approvals: {count: 2, role: approver}
    rollout: {canary_weight: 0.2, observation_s: 60, auto_promote: true, fresh_s: 3600}
  - models: "*"
    alias: staging
    approvals: {count: 0}
rollbacks:
  - signals: [performance, error_rate]
    min_severity: critical
    action: rollback
"""


def facts(model_name: str, version: int, *, created_by: str = "alice", accuracy: float = 0.95) -> VersionFacts:
    return VersionFacts(
        ref=VersionRef(model_name, version, f"sha256:{version:064d}"),
        created_by=created_by,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        signature=SIGNATURE,
        description="credit scoring",
        metrics={"accuracy": accuracy},
        training_datasets=("sha256:" + "1" * 64,),
        evaluation_datasets=("sha256:" + "2" * 64,),
        tags=CARD_TAGS,
    )


@dataclass
class InMemoryCatalog:
    """The registry's part of governance, in memory: versions, artifacts and alias moves."""

    versions: dict[tuple[str, int], VersionFacts] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    aliases: dict[tuple[str, str], int] = field(default_factory=dict)
    moves: list[tuple[str, str, int]] = field(default_factory=list)

    def add(self, version: VersionFacts) -> VersionFacts:
        self.versions[(version.ref.model_name, version.ref.version)] = version
        return version

    def change_digest(self, model_name: str, version: int, digest: str) -> None:
        old = self.versions[(model_name, version)]
        self.versions[(model_name, version)] = replace(old, ref=replace(old.ref, digest=digest))

    def get_version(self, model_name: str, version: int) -> VersionFacts:
        try:
            return self.versions[(model_name, version)]
        except KeyError:
            raise NotFound(f"model {model_name!r} has no version {version}") from None

    def alias_version(self, model_name: str, alias: str) -> VersionFacts | None:
        version = self.aliases.get((model_name, alias))
        return None if version is None else self.versions[(model_name, version)]

    def download(self, digest: str) -> bytes:
        try:
            return self.artifacts[digest]
        except KeyError:
            raise NotFound(f"no artifact {digest}") from None

    def set_alias(self, model_name: str, alias: str, version: int, reason: str) -> None:
        self.aliases[(model_name, alias)] = version
        self.moves.append((model_name, alias, version))


@dataclass
class FixedEvaluator:
    """Measurements decided by the test, not by running a model."""

    metrics: dict[str, float] = field(default_factory=lambda: {"accuracy": 0.95})
    latency_ms: float = 1.0
    gaps: tuple[float, float] = (0.01, 0.02)
    importance: dict[str, float] = field(default_factory=lambda: {"mean radius": 0.3, "mean texture": 0.1})

    def measure(
        self,
        model: bytes,
        dataset: bytes,
        dataset_digest: str,
        signature: Signature,
        evaluation: EvaluationCheck,
        fairness: FairnessCheck | None,
    ) -> Measurements:
        dpd, eod = self.gaps if fairness else (None, None)
        return Measurements(
            dataset_digest, 100, self.metrics, self.latency_ms, dpd, eod, self.importance, 100, "fixed by the test"
        )

    def latency_p95_ms(self, model: bytes, signature: Signature) -> float:
        return self.latency_ms

    def close(self) -> None:
        """Nothing to release."""


def governance_settings(tmp: Path, database_url: str = "", **overrides: Any) -> GovernanceSettings:
    policy = tmp / "policy.yaml"
    if not policy.exists():
        policy.write_text(POLICY)
    defaults: dict[str, Any] = {
        "data_dir": tmp,
        "database_url": database_url,
        "policy_file": policy,
        "grpc_port": 0,
        "http_port": 0,
        "kafka_required": False,
        "checkpoint_every": 5,
        "event_signing_key": seed_hex(GOVERNANCE_KEY),
        "trusted_monitor_keys": [MONITOR_PUBLIC],
        "shutdown_grace_s": 2.0,
        # Fresh consumer groups per service: tests sharing one broker must not wait out each other's rebalances.
        "consumer_group_prefix": f"governance-{uuid.uuid4().hex[:8]}",
    }
    return GovernanceSettings(**{**defaults, **overrides})


@pytest.fixture
def catalog() -> InMemoryCatalog:
    return InMemoryCatalog()


def start_governance(tmp: Path, database_url: str = "", catalog: InMemoryCatalog | None = None) -> GovernanceParts:
    """Real handlers and store with the registry and the evaluator faked. Nothing published before (no broker),
    so the audit signer starts from the database; a test of a restart recovers it itself."""
    built = build(
        governance_settings(tmp, database_url), catalog=catalog or InMemoryCatalog(), evaluator=FixedEvaluator()
    )
    built.handlers.recover_signer([])
    return built


@pytest.fixture
def governance(tmp_path: Path, catalog: InMemoryCatalog) -> Iterator[GovernanceParts]:
    """Governance on SQLite in a temp dir (`start_governance`)."""
    built = start_governance(tmp_path, catalog=catalog)
    yield built
    built.store.engine.dispose()


def rewrite_audit_from(engine: Engine, k: int) -> None:
    """An attacker with database access but not the key: change every audit entry from k on, re-hash the chain
    from there, delete the checkpoints from k on."""
    log = schema.audit_log
    with engine.begin() as connection:
        rows = connection.execute(sa.select(log).where(log.c.seq >= k - 1).order_by(log.c.seq)).all()
        previous = AuditEntry(**rows[0]._asdict())
        for row in rows[1:]:
            old = AuditEntry(**row._asdict())
            forged = chain_entry(
                previous,
                recorded_at=old.recorded_at,
                kind=old.kind,
                event_id=old.event_id,
                source=old.source,
                model_name=old.model_name,
                version=old.version,
                request_id=old.request_id,
                body={"forged": old.seq},
            )
            values = {"body": forged.body, "prev_hash": forged.prev_hash, "hash": forged.hash}
            connection.execute(log.update().where(log.c.seq == old.seq).values(**values))
            previous = forged
        connection.execute(sa.delete(schema.audit_checkpoints).where(schema.audit_checkpoints.c.seq >= k))


def truncate_audit_to(engine: Engine, keep: int) -> None:
    """An attacker with database access: cut the audit entries after `keep` and their checkpoints, and point the
    head at `keep`."""
    with engine.begin() as connection:
        connection.execute(sa.delete(schema.audit_log).where(schema.audit_log.c.seq > keep))
        connection.execute(sa.delete(schema.audit_checkpoints).where(schema.audit_checkpoints.c.seq > keep))
        connection.execute(schema.audit_head.update().values(seq=keep))
