"""What the governance use cases need from the outside world; adapters implement these, tests fake them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from modelyard.events.envelope import Event
from modelyard.governance.domain.audit import AuditEntry, Checkpoint
from modelyard.governance.domain.card import DeploymentRecord
from modelyard.governance.domain.checks import Measurements
from modelyard.governance.domain.deployment import Deployment, Incident, Plan
from modelyard.governance.domain.model import Signature, VersionFacts
from modelyard.governance.domain.policy import EvaluationCheck, FairnessCheck
from modelyard.governance.domain.provenance import PredictionFacts
from modelyard.governance.domain.workflow import PromotionRequest


class ModelCatalog(Protocol):
    """The registry, as governance uses it: reads of versions and artifacts, and alias moves."""

    def get_version(self, model_name: str, version: int) -> VersionFacts:
        """Raises NotFound for an unknown model or version."""

    def alias_version(self, model_name: str, alias: str) -> VersionFacts | None:
        """The version `alias` names now, if any."""

    def download(self, digest: str) -> bytes: ...

    def set_alias(self, model_name: str, alias: str, version: int, reason: str) -> None: ...


class PredictionLog(Protocol):
    """The monitor's log of predictions, as governance asks it for one prediction."""

    def prediction(self, request_id: str) -> PredictionFacts:
        """Raises NotFound (unknown or pruned), InvalidArgument, or MonitorUnavailable."""


class Evaluator(Protocol):
    """Runs a model on a dataset and measures it (metrics, latency, fairness)."""

    def measure(
        self,
        model: bytes,
        dataset: bytes,
        dataset_digest: str,
        signature: Signature,
        evaluation: EvaluationCheck,
        fairness: FairnessCheck | None,
    ) -> Measurements: ...

    def latency_p95_ms(self, model: bytes, signature: Signature) -> float: ...

    def close(self) -> None:
        """Release what measuring holds (worker processes)."""


class Unit(Protocol):
    """One transaction over governance's state; events added here are published (outbox) and audited
    only if it commits."""

    def get_request(self, request_id: str) -> PromotionRequest:
        """Raises NotFound."""

    def open_requests(self, model_name: str | None = None, target_alias: str | None = None) -> list[PromotionRequest]:
        """Requests still checking or awaiting approval, oldest first."""

    def save_request(self, request: PromotionRequest) -> None: ...

    def latest_request_for(self, model_name: str, version: int) -> PromotionRequest | None: ...

    def get_deployment(self, model_name: str) -> Deployment | None: ...

    def deployed_models(self) -> list[str]: ...

    def save_deployment(self, deployment: Deployment, role: str, reason: str) -> None:
        """Store the model's new current deployment and append it to the deployment history."""

    def plan_at(self, model_name: str, revision: int) -> Plan:
        """The model's plan of that revision; raises NotFound."""

    def deployment_history(self, model_name: str, version: int | None = None) -> list[DeploymentRecord]: ...

    def record_incident(self, incident: Incident) -> None: ...

    def has_open_incident(self, model_name: str, version: int) -> bool: ...

    def publish(self, event: Event, *, request_id: str = "", version: int = 0) -> None:
        """Queue a governance decision (built by `governance.convert`) for the decisions topic and append it to
        the audit log."""

    def audit(
        self,
        *,
        kind: str,
        event_id: str,
        source: str,
        time: datetime,
        model_name: str,
        version: int,
        request_id: str,
        body: dict[str, Any],
    ) -> bool:
        """Append an entry unless `event_id` is already in the log; whether it was appended."""


class GovernanceStore(Protocol):
    def unit(self) -> AbstractContextManager[Unit]: ...

    def audit_entries(
        self,
        *,
        model_name: str | None = None,
        version: int | None = None,
        request_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        through_seq: int | None = None,
    ) -> Iterator[AuditEntry]:
        """Entries in seq order, filtered; no filter: the whole chain."""

    def checkpoints(self) -> Sequence[Checkpoint]: ...

    def checkpoint(self) -> Checkpoint | None:
        """Sign the chain's head now, unless the signer's last checkpoint already covers it; the checkpoint that
        covers the head (None: the chain is empty). Raises AuditTampered when the chain does not extend the last
        checkpoint the signer signed, SignerNotReady before `recover_signer`."""

    def recover_signer(self, published: Iterable[Checkpoint]) -> Checkpoint | None:
        """Let the signer start from the latest checkpoint it signed among `published` (read from outside the
        database) and those stored; the one it starts from (None: from the start of the chain)."""
