"""Composition root of the monitor service: builds adapters, wires handlers and transports into a `Service`.

`build` is the seam tests use: it takes the reference source (a fake; by default the one the settings name, the
registry or local files) and returns the wired parts; `service` makes the runnable `Service` around them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from modelyard.events.signing import EVENT_KEY_FILE, EventSigner, load_private_key
from modelyard.events.topics import MONITOR_ALERTS, MONITOR_FEEDBACK, REGISTRY_EVENTS, SERVING_PREDICTIONS
from modelyard.kafka.producer import EventPublisher
from modelyard.monitor.adapters.metrics import PrometheusMetrics
from modelyard.monitor.adapters.references import LocalReferenceSource
from modelyard.monitor.adapters.registry_references import RegistryReferenceSource
from modelyard.monitor.adapters.store import SqlMonitorStore, set_sqlite_synchronous
from modelyard.monitor.config import MonitorSettings
from modelyard.monitor.domain.ports import DatasetRegistry, ReferenceSource
from modelyard.monitor.domain.profile import ProfileOptions
from modelyard.monitor.entrypoints import dashboard
from modelyard.monitor.entrypoints.access import ACCESS
from modelyard.monitor.entrypoints.consumer import predictions_consumer, references_consumer
from modelyard.monitor.entrypoints.grpc_api import grpc_api
from modelyard.monitor.entrypoints.http_api import API_PREFIX, FEEDBACK_BATCH_PATH, router
from modelyard.monitor.handlers import Monitor, Retraining
from modelyard.monitor.profiles import ReferenceProfiles
from modelyard.runtime import Service, StartupError
from modelyard.runtime.kit import consume_forever
from modelyard.sql.engine import create_engine, disposal
from modelyard.sql.outbox import relay_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorParts:
    settings: MonitorSettings
    engine: Engine
    store: SqlMonitorStore
    monitor: Monitor
    profiles: ReferenceProfiles
    retraining: Retraining | None  # when the policy names signals that suggest retraining


def build(
    settings: MonitorSettings, *, references: ReferenceSource | None = None, datasets: DatasetRegistry | None = None
) -> MonitorParts:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    policy = settings.policy()
    engine = create_engine(settings.resolved_database_url)
    if engine.dialect.name == "sqlite":
        set_sqlite_synchronous(engine, settings.sqlite_synchronous)
    store = SqlMonitorStore(engine, policy, settings.prediction_log())
    store.migrate()
    source = references or reference_source(settings)
    profiles = ReferenceProfiles(
        source,
        ProfileOptions(performance=policy.performance),
        retry_s=settings.reference_retry_s,
        isolated=references is None,  # the settings' sources pickle; a test's fake may not, and stays in process
    )
    monitor = Monitor(
        store,
        profiles,
        policy,
        PrometheusMetrics(),
        reference_wait_s=settings.reference_wait_s,
        prediction_log=settings.prediction_log(),
    )
    retraining = None
    if policy.retraining.enabled:
        if datasets is None and not isinstance(source, RegistryReferenceSource):
            raise StartupError("retrain_on registers snapshots in the registry: pass `datasets` with `references`")
        retraining = Retraining(store, datasets or cast(RegistryReferenceSource, source), policy)
    return MonitorParts(settings, engine, store, monitor, profiles, retraining)


def event_signing_key(settings: MonitorSettings) -> Ed25519PrivateKey:
    try:
        return load_private_key(settings.event_signing_key, settings.data_dir / EVENT_KEY_FILE)
    except ValueError as exc:
        raise StartupError(str(exc)) from None


def reference_source(settings: MonitorSettings) -> ReferenceSource:
    if settings.reference_source == "registry":
        token = settings.registry_token.get_secret_value() if settings.registry_token else None
        return RegistryReferenceSource(settings.registry_address, token, tls=settings.tls.client)
    return LocalReferenceSource(settings.resolved_reference_dir)


def service(parts: MonitorParts) -> Service:
    """The runnable service around wired parts: consumers, outbox relay, gRPC and REST."""
    settings = parts.settings
    # Incidents can trigger a rollback: governance acts only on those signed by a key it trusts.
    signer = EventSigner(event_signing_key(settings))
    publisher = EventPublisher.from_settings(settings, signer=signer)  # the APIs' feedback events
    consumer = predictions_consumer(settings, parts.monitor)
    references = references_consumer(settings, parts.monitor)

    async def flush_idle_windows() -> None:
        # A stream that went quiet still closes its last window: its alarms are raised, not left pending.
        while True:
            await asyncio.sleep(max(settings.window_idle_flush_s / 4, 1.0))
            await asyncio.to_thread(parts.monitor.flush_idle, time.time())

    tasks: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
        "predictions-consumer": functools.partial(
            consume_forever, settings, consumer, [SERVING_PREDICTIONS, MONITOR_FEEDBACK]
        ),
        "reference-prefetch": functools.partial(consume_forever, settings, references, [REGISTRY_EVENTS]),
        "outbox-relay": relay_task(settings, parts.engine, parts.store.outbox, [MONITOR_ALERTS], signer=signer),
    }
    if settings.window_idle_flush_s > 0:
        tasks["idle-flush"] = flush_idle_windows
    if parts.retraining is not None:
        tasks["retraining-snapshots"] = _snapshots(parts.retraining, settings.retrain_interval_s)
    return Service(
        settings,
        access=ACCESS,
        grpc_apis=[grpc_api(parts.monitor, publisher)],
        routers=[router(parts.monitor, publisher), dashboard.router(parts.monitor)],
        body_limits={API_PREFIX + FEEDBACK_BATCH_PATH: settings.feedback_batch_max_bytes},
        background_tasks=tasks,
        # A stream it reads no more (its commits fail, its topics cannot be verified) shows as degraded.
        degraded_checks={"predictions-consumer": consumer.delivering},
        on_start=[publisher.start],
        # Run in reverse, after the consumers finished their records: the publisher flushes, then the database.
        on_stop=[disposal(parts.engine), _close(parts.profiles), publisher.stop],
    )


def _close(profiles: ReferenceProfiles) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        profiles.close()

    return close


def _snapshots(retraining: Retraining, interval_s: float) -> Callable[[], Coroutine[Any, Any, None]]:
    async def run() -> None:
        while True:
            try:
                await asyncio.to_thread(retraining.suggest)
            except Exception:  # the registry away, a database hiccup: the incidents are met again next pass
                log.exception("retraining snapshots: the pass failed; trying again in %gs", interval_s)
            await asyncio.sleep(interval_s)

    return run
