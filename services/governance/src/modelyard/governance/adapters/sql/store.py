"""`GovernanceStore` on SQLAlchemy Core: SQLite (embedded default) and PostgreSQL, both tested."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from google.protobuf.json_format import MessageToDict
from sqlalchemy.engine import Connection, Engine

from modelyard.auth import Role
from modelyard.events.envelope import Event
from modelyard.events.topics import GOVERNANCE_CHECKPOINTS, GOVERNANCE_DECISIONS
from modelyard.governance import convert
from modelyard.governance.adapters.metrics import AUDIT_SIGNING_REFUSED
from modelyard.governance.adapters.sql import schema as t
from modelyard.governance.domain import audit as chain
from modelyard.governance.domain.card import DeploymentRecord
from modelyard.governance.domain.checks import CheckResult
from modelyard.governance.domain.deployment import Deployment, Incident, Plan
from modelyard.governance.domain.errors import AuditTampered, NotFound, SignerNotReady
from modelyard.governance.domain.model import VersionRef
from modelyard.governance.domain.signer import AuditSigner
from modelyard.governance.domain.workflow import Approval, PromotionRequest, RequestState
from modelyard.sql.engine import transaction
from modelyard.sql.migrations import upgrade
from modelyard.sql.outbox import enqueue

log = logging.getLogger(__name__)

CHECKPOINTS_KEY = "audit"  # one chain: every checkpoint on the one partition, in order
_OPEN_STATES = [s.value for s in RequestState if s.open]


class SqlGovernanceStore:
    def __init__(
        self, engine: Engine, signer: AuditSigner, checkpoint_every: int = 100, signer_wait_s: float = 10.0
    ) -> None:
        self.engine = engine
        self.signer = signer
        self._checkpoint_every = checkpoint_every
        self._signer_wait_s = signer_wait_s

    def migrate(self) -> None:
        upgrade(self.engine, "modelyard.governance.adapters.sql:migrations")

    @contextmanager
    def unit(self) -> Iterator[SqlUnit]:
        with transaction(self.engine, write=True) as connection:
            unit = SqlUnit(connection, self.signer, self._checkpoint_every)
            yield unit
        self.signer.signed(unit.signed)  # committed (and queued for the topic): now the signer may rely on them

    def audit_entries(
        self,
        *,
        model_name: str | None = None,
        version: int | None = None,
        request_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        through_seq: int | None = None,
    ) -> Iterator[chain.AuditEntry]:
        entries = t.audit_log
        query = sa.select(entries).order_by(entries.c.seq)
        for column, value in (
            (entries.c.model_name, model_name),
            (entries.c.version, version),
            (entries.c.request_id, request_id),
        ):
            if value:
                query = query.where(column == value)
        if since is not None:
            query = query.where(entries.c.recorded_at >= since)
        if until is not None:
            query = query.where(entries.c.recorded_at <= until)
        if through_seq is not None:
            query = query.where(entries.c.seq <= through_seq)
        # Streamed in pages by the driver rather than loaded whole: a verify walks the entire chain.
        with self.engine.connect() as connection:
            for row in connection.execution_options(yield_per=1000).execute(query):
                yield chain.AuditEntry(**row._asdict())

    def checkpoints(self) -> Sequence[chain.Checkpoint]:
        cp = t.audit_checkpoints
        with transaction(self.engine, write=False) as connection:
            rows = connection.execute(sa.select(cp).order_by(cp.c.id)).all()
        return [chain.Checkpoint(**{k: v for k, v in row._asdict().items() if k != "id"}) for row in rows]

    def checkpoint(self) -> chain.Checkpoint | None:
        # Right after a start, an export or a verification waits a little for the signer's recovery rather than
        # failing (the append path never waits: it holds the head's lock).
        self.signer.wait_recovered(self._signer_wait_s)
        with self.unit() as unit:
            return unit.checkpoint()

    def recover_signer(self, published: Iterable[chain.Checkpoint]) -> chain.Checkpoint | None:
        return self.signer.recover([*published, *self.checkpoints()])


class SqlUnit:
    def __init__(self, connection: Connection, signer: AuditSigner, checkpoint_every: int) -> None:
        self._c = connection
        self._signer = signer
        self._checkpoint_every = checkpoint_every
        self.signed: list[chain.Checkpoint] = []  # checkpoints this transaction stores

    # --- requests ---

    def get_request(self, request_id: str) -> PromotionRequest:
        row = self._c.execute(sa.select(t.requests).where(t.requests.c.id == request_id)).first()
        if row is None:
            raise NotFound(f"no promotion request {request_id!r}")
        return self._request(row)

    def open_requests(self, model_name: str | None = None, target_alias: str | None = None) -> list[PromotionRequest]:
        r = t.requests
        query = sa.select(r).where(r.c.state.in_(_OPEN_STATES)).order_by(r.c.created_at, r.c.id)
        if model_name:
            query = query.where(r.c.model_name == model_name)
        if target_alias:
            query = query.where(r.c.target_alias == target_alias)
        return [self._request(row) for row in self._c.execute(query)]

    def latest_request_for(self, model_name: str, version: int) -> PromotionRequest | None:
        r = t.requests
        query = (
            sa.select(r)
            .where(r.c.model_name == model_name, r.c.version == version)
            .order_by(r.c.created_at.desc())
            .limit(1)
        )
        row = self._c.execute(query).first()
        return self._request(row) if row else None

    def save_request(self, request: PromotionRequest) -> None:
        values = {
            "model_name": request.version.model_name,
            "version": request.version.version,
            "digest": request.version.digest,
            "target_alias": request.target_alias,
            "requested_by": request.requested_by,
            "registered_by": request.registered_by,
            "policy_hash": request.policy_hash,
            "required_approvals": request.required_approvals,
            "approver_role": request.approver_role.value,
            "created_at": request.created_at,
            "expires_at": request.expires_at,
            "state": request.state.value,
            "checks": [dataclasses.asdict(c) | {"evidence": dict(c.evidence)} for c in request.checks],
            "reason": request.reason,
            "decided_by": request.decided_by,
            "decided_at": request.decided_at,
        }
        updated = self._c.execute(t.requests.update().where(t.requests.c.id == request.id).values(**values))
        if updated.rowcount == 0:
            self._c.execute(t.requests.insert().values(id=request.id, **values))
        known = {
            (row.approver, row.digest)
            for row in self._c.execute(sa.select(t.approvals).where(t.approvals.c.request_id == request.id))
        }
        for approval in request.approvals:
            if (approval.approver, approval.digest) not in known:
                self._c.execute(
                    t.approvals.insert().values(
                        request_id=request.id,
                        approver=approval.approver,
                        digest=approval.digest,
                        approved_at=approval.at,
                    )
                )

    def _request(self, row: sa.Row[Any]) -> PromotionRequest:
        a = t.approvals
        approvals = [
            Approval(r.approver, r.digest, r.approved_at)
            for r in self._c.execute(sa.select(a).where(a.c.request_id == row.id).order_by(a.c.approved_at))
        ]
        return PromotionRequest(
            id=row.id,
            version=VersionRef(row.model_name, row.version, row.digest),
            target_alias=row.target_alias,
            requested_by=row.requested_by,
            registered_by=row.registered_by,
            policy_hash=row.policy_hash,
            required_approvals=row.required_approvals,
            approver_role=Role(row.approver_role),
            created_at=row.created_at,
            expires_at=row.expires_at,
            state=RequestState(row.state),
            checks=[CheckResult(**c) for c in row.checks],
            approvals=approvals,
            reason=row.reason,
            decided_by=row.decided_by,
            decided_at=row.decided_at,
        )

    # --- deployments ---

    def get_deployment(self, model_name: str) -> Deployment | None:
        row = self._c.execute(sa.select(t.deployments).where(t.deployments.c.model_name == model_name)).first()
        return _deployment(row.state) if row else None

    def deployed_models(self) -> list[str]:
        return list(self._c.scalars(sa.select(t.deployments.c.model_name)))

    def save_deployment(self, deployment: Deployment, role: str, reason: str) -> None:
        name = deployment.plan.model_name
        state = _json(deployment)
        if (
            self._c.execute(
                t.deployments.update().where(t.deployments.c.model_name == name).values(state=state)
            ).rowcount
            == 0
        ):
            self._c.execute(t.deployments.insert().values(model_name=name, state=state))
        self._c.execute(
            t.deployment_history.insert().values(
                model_name=name,
                revision=deployment.plan.revision,
                at=datetime.now(UTC),
                role=role,
                alias=deployment.alias,
                request_id=deployment.request_id,
                candidate_version=deployment.candidate.version,
                reason=reason,
                plan=_json(deployment.plan),
            )
        )

    def plan_at(self, model_name: str, revision: int) -> Plan:
        h = t.deployment_history
        plan = self._c.scalar(sa.select(h.c.plan).where(h.c.model_name == model_name, h.c.revision == revision))
        if plan is None:
            raise NotFound(f"model {model_name!r} has no plan revision {revision}")
        return _plan(plan)

    def deployment_history(self, model_name: str, version: int | None = None) -> list[DeploymentRecord]:
        h = t.deployment_history
        query = sa.select(h).where(h.c.model_name == model_name).order_by(h.c.revision)
        if version is not None:
            query = query.where(h.c.candidate_version == version)
        return [
            DeploymentRecord(row.revision, row.at.isoformat(), row.role, row.alias, row.request_id)
            for row in self._c.execute(query)
        ]

    def record_incident(self, incident: Incident) -> None:
        i = t.incidents
        values = {"model_name": incident.model_name, "version": incident.version, "open": incident.open}
        if self._c.execute(i.update().where(i.c.incident_id == incident.incident_id).values(**values)).rowcount == 0:
            self._c.execute(i.insert().values(incident_id=incident.incident_id, **values))

    def has_open_incident(self, model_name: str, version: int) -> bool:
        i = t.incidents
        query = sa.select(sa.func.count()).where(i.c.model_name == model_name, i.c.version == version, i.c.open)
        return bool(self._c.scalar(query))

    # --- events and audit ---

    def publish(self, event: Event, *, request_id: str = "", version: int = 0) -> None:
        enqueue(self._c, t.outbox, GOVERNANCE_DECISIONS, event)
        self.audit(
            kind=event.type,
            event_id=event.id,
            source=event.source,
            time=event.time,
            model_name=event.key,
            version=version,
            request_id=request_id,
            body=MessageToDict(event.payload, preserving_proto_field_name=True),
        )

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
        head = self._locked_head()
        if self._c.scalar(sa.select(t.audit_log.c.seq).where(t.audit_log.c.event_id == event_id)) is not None:
            return False
        entry = chain.chain_entry(
            head,
            recorded_at=datetime.now(UTC),
            kind=kind,
            event_id=event_id,
            source=source,
            model_name=model_name,
            version=version,
            request_id=request_id,
            body={"event_time": time.isoformat(), "payload": body},
        )
        self._c.execute(t.audit_log.insert().values(**dataclasses.asdict(entry)))
        self._c.execute(t.audit_head.update().values(seq=entry.seq))
        if entry.seq % self._checkpoint_every == 0:
            # A refusal must not stop the event from being recorded: the entry stays unsigned, which verify reports.
            with contextlib.suppress(AuditTampered, SignerNotReady):
                self._sign_head(entry)
        return True

    def checkpoint(self) -> chain.Checkpoint | None:
        """Sign the head (and any entry due since the last checkpoint); the checkpoint that covers the head, None
        for an empty chain. Raises AuditTampered when the chain does not extend the signer's last checkpoint."""
        head = self._locked_head()
        signed = self._sign_head(head)
        return signed[-1] if signed else self._signer.last if head is not None else None

    def _sign_head(self, head: chain.AuditEntry | None) -> list[chain.Checkpoint]:
        try:
            checkpoints = self._signer.sign(head, self._entries, self._checkpoint_every)
        except AuditTampered as refusal:
            AUDIT_SIGNING_REFUSED.inc()
            log.error("audit signer refuses to sign the head: %s", refusal)
            raise
        except SignerNotReady:
            log.info("audit checkpoint deferred: the signer has not recovered its last checkpoint yet")
            raise
        for checkpoint in checkpoints:
            self._c.execute(t.audit_checkpoints.insert().values(**dataclasses.asdict(checkpoint)))
            event = Event.new(CHECKPOINTS_KEY, convert.checkpoint_pb(checkpoint), convert.SOURCE)
            enqueue(self._c, t.outbox, GOVERNANCE_CHECKPOINTS, event)
        self.signed += checkpoints
        return checkpoints

    def _entries(self, first: int, last: int) -> Iterator[chain.AuditEntry]:
        entries = t.audit_log
        query = sa.select(entries).where(entries.c.seq.between(first, last)).order_by(entries.c.seq)
        for row in self._c.execute(query):
            yield chain.AuditEntry(**row._asdict())

    def _locked_head(self) -> chain.AuditEntry | None:
        seq = self._c.scalar(sa.select(t.audit_head.c.seq).where(t.audit_head.c.id == 1).with_for_update())
        row = self._c.execute(sa.select(t.audit_log).where(t.audit_log.c.seq == seq)).first()
        return chain.AuditEntry(**row._asdict()) if row else None


def _json(value: Any) -> Any:
    """A dataclass as JSON-ready data (datetimes as ISO strings, sets as sorted lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, frozenset | set):
        return sorted(value)
    return value


def _ref(data: dict[str, Any] | None) -> VersionRef | None:
    return VersionRef(**data) if data else None


def _plan(data: dict[str, Any]) -> Plan:
    primary = _ref(data["primary"])
    assert primary is not None  # a plan always has a primary
    return Plan(
        model_name=data["model_name"],
        primary=primary,
        revision=data["revision"],
        canary=_ref(data["canary"]),
        canary_weight=data["canary_weight"],
        shadow=_ref(data["shadow"]),
    )


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _deployment(data: dict[str, Any]) -> Deployment:
    approved_at = _time(data["approved_at"])
    assert approved_at is not None
    return Deployment(
        plan=_plan(data["plan"]),
        alias=data["alias"],
        request_id=data["request_id"],
        approved_at=approved_at,
        previous=_ref(data["previous"]),
        observe_until=_time(data["observe_until"]),
        fresh_until=_time(data["fresh_until"]),
        auto_promote=data["auto_promote"],
        handled_incidents=frozenset(data["handled_incidents"]),
    )
