"""The registry's composition root: builds the store, artifact store, handlers and transports, and the Service."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelyard.events.topics import REGISTRY_EVENTS
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.producer import EventPublisher
from modelyard.registry.adapters.artifacts import LocalArtifactStore
from modelyard.registry.adapters.ingestion import OnnxArtifactInspector
from modelyard.registry.adapters.sql import schema
from modelyard.registry.adapters.sql.store import SqlRegistryStore
from modelyard.registry.config import RegistrySettings
from modelyard.registry.entrypoints.access import ACCESS
from modelyard.registry.entrypoints.grpc_api import registry_grpc_api
from modelyard.registry.entrypoints.rest import registry_router
from modelyard.registry.handlers import RegistryHandlers, RegistryPolicy
from modelyard.runtime import Service
from modelyard.sql.engine import create_engine
from modelyard.sql.outbox import OutboxRelay

log = logging.getLogger(__name__)
BROKER_RETRY_S = 1.0


@dataclass(frozen=True)
class Registry:
    """The registry's parts, wired: what transports and tests work with."""

    settings: RegistrySettings
    engine: Engine
    store: SqlRegistryStore
    handlers: RegistryHandlers


def build_registry(settings: RegistrySettings) -> Registry:
    """Wire the parts and migrate the database to the current schema."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.resolved_database_url)
    store = SqlRegistryStore(engine)
    store.migrate()
    artifacts = LocalArtifactStore(settings.resolved_artifacts_dir)
    files, size = artifacts.clean_staging(settings.staging_idle_s)
    if files:
        log.warning("removed %d abandoned staged uploads (%d bytes) from %s", files, size, artifacts.staging_dir)
    handlers = RegistryHandlers(
        store,
        artifacts,
        OnnxArtifactInspector(artifacts.staging_dir),
        RegistryPolicy(
            max_artifact_bytes=settings.max_artifact_bytes,
            protected_aliases=settings.protected_aliases,
            gc_grace_s=settings.gc_grace_s,
        ),
    )
    return Registry(settings, engine, store, handlers)


def build(settings: RegistrySettings) -> Service:
    registry = build_registry(settings)

    async def relay_events() -> None:
        # The broker may be away when we start (or come and go): changes are kept in the outbox meanwhile.
        while True:
            publisher = EventPublisher.from_settings(settings)
            try:
                await publisher.start()
                break
            except Exception as exc:  # aiokafka raises several unrelated types for "not there yet"
                log.warning("event publisher cannot start yet: %r", exc)
                await publisher.stop()
                await asyncio.sleep(BROKER_RETRY_S)

        async def prepare() -> None:
            await ensure_topics(
                settings.kafka_bootstrap, [REGISTRY_EVENTS], timeout_s=10, security=settings.kafka_security
            )

        try:
            await OutboxRelay(registry.engine, schema.outbox, publisher, prepare=prepare).run()
        finally:
            await publisher.stop()

    async def check_versions() -> None:
        while True:
            if not await asyncio.to_thread(registry.handlers.check_pending):
                await asyncio.sleep(settings.check_interval_s)

    async def database_ready() -> bool:
        def select_one() -> bool:
            with registry.engine.connect() as connection:
                return bool(connection.scalar(sa.text("SELECT 1")) == 1)

        return await asyncio.to_thread(select_one)

    async def dispose() -> None:
        registry.engine.dispose()

    return Service(
        settings,
        access=ACCESS,
        grpc_apis=[registry_grpc_api(registry.handlers)],
        routers=[registry_router(registry.handlers)],
        body_limits={"/v1/artifacts": settings.max_artifact_bytes},
        background_tasks={"outbox-relay": relay_events, "version-checks": check_versions},
        readiness_checks={"database": database_ready},
        on_stop=[dispose],
    )
