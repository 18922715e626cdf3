"""The registry's composition root: `build` wires the store, artifact store and handlers (what tests work
with); `service` makes the runnable `Service` around them (transports, outbox relay,
registration checks)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from modelyard.events.topics import REGISTRY_EVENTS
from modelyard.registry.adapters.artifacts import LocalArtifactStore
from modelyard.registry.adapters.ingestion import OnnxArtifactInspector
from modelyard.registry.adapters.s3_artifacts import S3ArtifactStore, S3Location, s3_client
from modelyard.registry.adapters.sql import schema
from modelyard.registry.adapters.sql.store import SqlRegistryStore
from modelyard.registry.config import RegistrySettings
from modelyard.registry.entrypoints.access import ACCESS
from modelyard.registry.entrypoints.grpc_api import registry_grpc_api
from modelyard.registry.entrypoints.mlflow_common import ARTIFACTS, PREFIX, unsupported_router
from modelyard.registry.entrypoints.mlflow_logged_models import mlflow_logged_models_router
from modelyard.registry.entrypoints.mlflow_registry import mlflow_artifacts_router, mlflow_registry_router
from modelyard.registry.entrypoints.mlflow_tracking import mlflow_tracking_router
from modelyard.registry.entrypoints.rest import registry_router
from modelyard.registry.entrypoints.rest_tracking import tracking_router
from modelyard.registry.handlers import RegistryHandlers, RegistryPolicy
from modelyard.runtime import Service
from modelyard.sql.engine import create_engine, database_ready, disposal
from modelyard.sql.outbox import relay_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistryParts:
    """The registry's parts, wired: what transports and tests work with."""

    settings: RegistrySettings
    engine: Engine
    store: SqlRegistryStore
    handlers: RegistryHandlers


def build(settings: RegistrySettings) -> RegistryParts:
    """Wire the parts and migrate the database to the current schema."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.resolved_database_url)
    store = SqlRegistryStore(engine)
    store.migrate()
    artifacts = artifact_store(settings)
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
    return RegistryParts(settings, engine, store, handlers)


def artifact_store(settings: RegistrySettings) -> LocalArtifactStore | S3ArtifactStore:
    """S3 when `artifacts_url` names a bucket (uploads staged locally first), else the local directory."""
    if not settings.artifacts_url:
        return LocalArtifactStore(settings.resolved_artifacts_dir)
    client = s3_client(
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_access_key_id,
        settings.s3_secret_access_key.get_secret_value(),
    )
    return S3ArtifactStore(client, S3Location.parse(settings.artifacts_url), settings.resolved_artifacts_dir)


def service(parts: RegistryParts) -> Service:
    """The runnable registry around wired parts."""
    settings, handlers = parts.settings, parts.handlers

    async def check_versions() -> None:
        while True:
            if not await asyncio.to_thread(handlers.check_pending):
                await asyncio.sleep(settings.check_interval_s)

    return Service(
        settings,
        access=ACCESS,
        grpc_apis=[registry_grpc_api(handlers)],
        routers=[
            registry_router(handlers),
            tracking_router(handlers),
            mlflow_tracking_router(handlers, PREFIX),
            mlflow_logged_models_router(handlers, PREFIX),
            mlflow_registry_router(handlers, PREFIX),
            mlflow_artifacts_router(handlers),
            unsupported_router(),  # last: every MLflow path not matched above
        ],
        body_limits={"/v1/artifacts": settings.max_artifact_bytes, ARTIFACTS: settings.max_artifact_bytes},
        background_tasks={
            "outbox-relay": relay_task(settings, parts.engine, schema.outbox, [REGISTRY_EVENTS]),
            "version-checks": check_versions,
        },
        readiness_checks={"database": database_ready(parts.engine)},
        on_stop=[disposal(parts.engine)],
    )
