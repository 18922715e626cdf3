"""Composition root of the governance service: `build` wires the adapters and handlers into `GovernanceParts`
(the seam tests use: pass a fake catalog or evaluator and get the real handlers and store); `service` makes the
runnable `Service` around them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from modelyard.events import topics
from modelyard.events.signing import EVENT_KEY_FILE, EventSigner, TrustedKeys, load_private_key
from modelyard.governance.adapters.evaluation import IsolatedEvaluator
from modelyard.governance.adapters.metrics import ALIAS_DIVERGED, ALIAS_REPAIRS
from modelyard.governance.adapters.monitor import MonitorPredictionLog
from modelyard.governance.adapters.published import published_checkpoints
from modelyard.governance.adapters.registry import RegistryCatalog
from modelyard.governance.adapters.sql import schema
from modelyard.governance.adapters.sql.store import SqlGovernanceStore
from modelyard.governance.config import GovernanceSettings
from modelyard.governance.domain.audit import Checkpoint
from modelyard.governance.domain.policy import Policy, load_policy
from modelyard.governance.domain.ports import Evaluator, ModelCatalog, PredictionLog
from modelyard.governance.domain.signer import AuditSigner
from modelyard.governance.entrypoints.access import ACCESS
from modelyard.governance.entrypoints.api import GovernanceApi
from modelyard.governance.entrypoints.consumers import alert_consumer, audit_consumer
from modelyard.governance.entrypoints.transports import SERVICE, governance_grpc_api, governance_router
from modelyard.governance.handlers import GovernanceHandlers
from modelyard.runtime import Service, StartupError
from modelyard.runtime.kit import BROKER_RETRY, consume_forever
from modelyard.runtime.service import Hook
from modelyard.sql.engine import create_engine, database_ready, disposal
from modelyard.sql.outbox import relay_task

log = logging.getLogger(__name__)

API_NAME: str = SERVICE.full_name
DEFAULT_POLICY = Path(__file__).with_name("default_policy.yaml")
T = TypeVar("T")


@dataclass(frozen=True)
class GovernanceParts:
    """The governance service's parts, wired: what transports and tests work with."""

    settings: GovernanceSettings
    policy: Policy
    store: SqlGovernanceStore
    handlers: GovernanceHandlers
    event_key: Ed25519PrivateKey  # signs decisions

    def trusted_keys(self) -> TrustedKeys:
        """Whose signatures governance accepts: the monitor's on incidents, its own (current and earlier) on
        decisions (which its audit consumer reads back)."""
        settings = self.settings
        own = TrustedKeys.of("governance", settings.trusted_governance_keys, self.event_key.public_key())
        return own.merged(TrustedKeys.of("monitor", settings.trusted_monitor_keys))


def _key(configured: SecretStr | None, settings: GovernanceSettings, file_name: str) -> Ed25519PrivateKey:
    """A signing key: configured, or (local profile) a key file kept in the data directory."""
    try:
        return load_private_key(configured, settings.data_dir / file_name)
    except ValueError as exc:
        raise StartupError(str(exc)) from None


def build(
    settings: GovernanceSettings,
    *,
    catalog: ModelCatalog | None = None,
    evaluator: Evaluator | None = None,
    predictions: PredictionLog | None = None,
) -> GovernanceParts:
    """Load the policy (a bad file fails here, naming the line), migrate the database, wire the handlers.

    The audit signer signs nothing until `handlers.recover_signer` has told it what it published before (the
    service does so from the checkpoints topic as soon as the broker answers)."""
    try:
        policy = load_policy(settings.policy_file or DEFAULT_POLICY)
    except ValueError as exc:  # PolicyError: the message names the file and line
        raise StartupError(str(exc)) from None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Signs audit checkpoints and prediction traces (which verify against audit exports).
    signer = AuditSigner(_key(settings.audit_signing_key, settings, "audit-signing.key"))
    store = SqlGovernanceStore(create_engine(settings.resolved_database_url), signer, settings.checkpoint_every)
    store.migrate()
    if catalog is None:
        token = settings.registry_token.get_secret_value() if settings.registry_token else None
        catalog = RegistryCatalog(settings.registry_address, token, settings.tls.client)
    if predictions is None:
        monitor_token = settings.monitor_token.get_secret_value() if settings.monitor_token else None
        predictions = MonitorPredictionLog(settings.monitor_address, monitor_token, settings.tls.client)
    handlers = GovernanceHandlers(
        store,
        catalog,
        evaluator or IsolatedEvaluator(),
        policy,
        signer.public_key,
        checkpoint_every=settings.checkpoint_every,
        predictions=predictions,
        signer=signer,
    )
    log.info("policy %s loaded (%s)", policy.version, policy.hash)
    event_key = _key(settings.event_signing_key, settings, EVENT_KEY_FILE)
    return GovernanceParts(settings, policy, store, handlers, event_key)


def service(parts: GovernanceParts) -> Service:
    """The runnable governance service around wired parts: transports, outbox relay, consumers, periodic work."""
    settings, handlers, engine = parts.settings, parts.handlers, parts.store.engine
    trusted = parts.trusted_keys()
    api = GovernanceApi(handlers)

    async def workflow() -> None:
        # Restart-safe: each pass reads what is due from the store, nothing is kept in memory between passes.
        while True:
            await _guarded(asyncio.to_thread(handlers.run_pending_checks), "pending checks")
            await _guarded(asyncio.to_thread(handlers.expire_requests), "expiries")
            await _guarded(asyncio.to_thread(handlers.promote_due_canaries), "canary promotion")
            await asyncio.sleep(settings.work_interval_s)

    async def reconcile_aliases() -> None:
        # At startup and then periodically: an alias move lost to a registry outage or a crash is made again.
        while True:
            checks = await _guarded(asyncio.to_thread(handlers.reconcile_aliases), "alias reconciliation")
            for check in checks or []:
                if check.repaired:
                    ALIAS_REPAIRS.labels(model=check.model_name).inc()
                ALIAS_DIVERGED.labels(model=check.model_name).set(1 if check.diverged else 0)
            await asyncio.sleep(settings.alias_reconcile_interval_s)

    async def checkpoints() -> None:
        # The signer first learns what it published before (the database may have been rewritten meanwhile), then
        # signs at once what accrued while it could not (entries due every `checkpoint_every` and the head).
        published = await _published_checkpoints(settings)
        await asyncio.to_thread(handlers.recover_signer, published)
        while True:
            await _guarded(asyncio.to_thread(handlers.checkpoint), "audit checkpoint")
            await asyncio.sleep(settings.checkpoint_interval_s)

    auditor = audit_consumer(settings, handlers, trusted)
    alerts = alert_consumer(settings, handlers, trusted)
    relay = relay_task(
        settings,
        engine,
        schema.outbox,
        [topics.GOVERNANCE_DECISIONS, topics.GOVERNANCE_CHECKPOINTS],
        signer=EventSigner(parts.event_key),
    )
    return Service(
        settings,
        access=ACCESS,
        grpc_apis=[governance_grpc_api(api)],
        routers=[governance_router(api)],
        background_tasks={
            "outbox-relay": relay,
            "audit-consumer": functools.partial(consume_forever, settings, auditor),
            "alert-consumer": functools.partial(consume_forever, settings, alerts),
            "workflow": workflow,
            "audit-checkpoints": checkpoints,
            "alias-reconciliation": reconcile_aliases,
        },
        readiness_checks={"database": database_ready(engine)},
        # Decisions are taken without the broker; a topic whose events go unread shows as degraded.
        degraded_checks={"audit-consumer": auditor.delivering, "alert-consumer": alerts.delivering},
        on_stop=[disposal(engine), _closing(handlers.evaluator)],
    )


def _closing(evaluator: Evaluator) -> Hook:
    """A stop hook: stop the evaluator's worker."""

    async def close() -> None:
        evaluator.close()

    return close


async def _published_checkpoints(settings: GovernanceSettings) -> list[Checkpoint]:
    """The checkpoints topic's records, waiting for the broker as long as it takes (the signer signs nothing until
    it has them)."""
    wait = BROKER_RETRY.first_s
    while True:
        try:
            return await published_checkpoints(settings.kafka_bootstrap, security=settings.kafka_security)
        except Exception as exc:  # aiokafka raises several unrelated types for "not there yet"
            log.warning("checkpoints topic cannot be read yet: %r", exc)
            await asyncio.sleep(wait)
            wait = BROKER_RETRY.after(wait)


async def _guarded(work: Awaitable[T], what: str) -> T | None:
    """One pass of periodic work, its result; a failure is logged (None) and retried next pass rather than
    stopping the service."""
    try:
        return await work
    except Exception:
        log.exception("%s failed; retrying next pass", what)
        return None
