"""Composition root of the monitor service: builds adapters, wires handlers and transports into a `Service`.

`build` is the seam tests use: it takes the reference source (a fake; by default the one the settings name, the
registry or local files) and returns the wired parts; `service` makes the runnable `Service` around them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from modelyard.contracts.events.v1 import monitor_events_pb2, registry_events_pb2, serving_events_pb2
from modelyard.events.signing import EVENT_KEY_FILE, EventSigner, load_private_key
from modelyard.events.topics import MONITOR_FEEDBACK, REGISTRY_EVENTS, SERVING_PREDICTIONS
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.consumer import EventConsumer
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
from modelyard.monitor.entrypoints.consumer import FeedbackConsumer, PredictionsConsumer, ReadyVersionsConsumer
from modelyard.monitor.entrypoints.grpc_api import grpc_api
from modelyard.monitor.entrypoints.http_api import API_PREFIX, FEEDBACK_BATCH_PATH, router
from modelyard.monitor.handlers import Monitor, Retraining
from modelyard.monitor.profiles import ReferenceProfiles
from modelyard.runtime import Service, StartupError
from modelyard.sql.engine import create_engine, disposal
from modelyard.sql.outbox import OutboxRelay

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
    store = SqlMonitorStore(engine, policy)
    store.migrate()
    source = references or reference_source(settings)
    profiles = ReferenceProfiles(
        source, ProfileOptions(performance=policy.performance), retry_s=settings.reference_retry_s
    )
    monitor = Monitor(store, profiles, policy, PrometheusMetrics(), reference_wait_s=settings.reference_wait_s)
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
    """The runnable service around wired parts: consumer, outbox relay, gRPC and REST."""
    settings = parts.settings
    # Incidents can trigger a rollback: governance acts only on those signed by a key it trusts.
    publisher = EventPublisher.from_settings(settings, signer=EventSigner(event_signing_key(settings)))
    consumer = EventConsumer.from_settings(
        settings,
        settings.consumer_group,
        [SERVING_PREDICTIONS, MONITOR_FEEDBACK],
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=max(100, settings.consumer_session_timeout_ms // 10),
        positions=parts.monitor,  # window state is checkpointed with the offsets it covers: resume from those
        max_records=settings.consumer_max_records,
        max_partition_fetch_bytes=settings.consumer_max_partition_fetch_bytes,
    )
    consumer.register_batch(serving_events_pb2.PredictionBatch, PredictionsConsumer(parts.monitor))
    consumer.register_batch(monitor_events_pb2.FeedbackReceived, FeedbackConsumer(parts.monitor))
    # A group of its own, from the latest event on its first start: versions made ready from then on are profiled
    # before their traffic; older ones are profiled when their first predictions arrive.
    registry_consumer = EventConsumer.from_settings(
        settings, f"{settings.consumer_group}.references", [REGISTRY_EVENTS], auto_offset_reset="latest"
    )
    registry_consumer.register(
        registry_events_pb2.ModelVersionStatusChanged, ReadyVersionsConsumer(parts.monitor), cpu_bound=True
    )

    async def prepare_broker() -> None:
        # The embedded broker forgets its topics on restart; creating them is idempotent.
        await ensure_topics(settings.kafka_bootstrap, security=settings.kafka_security)

    relay = OutboxRelay(parts.engine, parts.store.outbox, publisher, prepare=prepare_broker)

    async def consume() -> None:
        await prepare_broker()
        await consumer.start()
        await consumer.wait()

    async def prefetch_references() -> None:
        await prepare_broker()
        await registry_consumer.start()
        await registry_consumer.wait()

    async def stop_consumers() -> None:
        await registry_consumer.stop(settings.shutdown_grace_s)
        await consumer.stop(settings.shutdown_grace_s)

    background_tasks = {
        "predictions-consumer": consume,
        "reference-prefetch": prefetch_references,
        "outbox-relay": relay.run,
    }
    if parts.retraining is not None:
        background_tasks["retraining-snapshots"] = _snapshots(parts.retraining, settings.retrain_interval_s)
    return Service(
        settings,
        access=ACCESS,
        grpc_apis=[grpc_api(parts.monitor, publisher)],
        routers=[router(parts.monitor, publisher), dashboard.router(parts.monitor)],
        body_limits={API_PREFIX + FEEDBACK_BATCH_PATH: settings.feedback_batch_max_bytes},
        background_tasks=background_tasks,
        # A stream it reads no more (its commits fail, its topics cannot be verified) shows as degraded.
        degraded_checks={"predictions-consumer": consumer.delivering},
        on_start=[publisher.start],
        # Run in reverse: the consumer finishes its record first, then the publisher flushes, then the database.
        on_stop=[disposal(parts.engine), _close(parts.profiles), publisher.stop, stop_consumers],
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
