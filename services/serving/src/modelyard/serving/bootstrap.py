"""Composition root of the serving service: builds adapters, wires handlers and transports into a `Service`.

`build` wires the transport-independent parts from ports (tests pass fakes through its keyword arguments);
`service` adds the decisions consumer, the prediction stream, the gRPC and REST transports and the background
tasks.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata

from opentelemetry import trace

from modelyard.contracts.inference import grpc_service_pb2
from modelyard.events.signing import TrustedKeys
from modelyard.events.topics import GOVERNANCE_DECISIONS
from modelyard.kafka.consumer import EventConsumer
from modelyard.kafka.producer import EventPublisher
from modelyard.retry import Backoff
from modelyard.runtime import GrpcApi, Service, kafka_check
from modelyard.serving.adapters.artifacts import LocalArtifacts, RegistryArtifacts
from modelyard.serving.adapters.explainer import ProcessExplainer
from modelyard.serving.adapters.kafka import KafkaStatusReporter, PredictionPublisher
from modelyard.serving.adapters.metrics import PrometheusMetrics, PrometheusStreamMetrics
from modelyard.serving.adapters.onnx import OnnxLoader
from modelyard.serving.adapters.plans import GovernancePlans, PlanFile
from modelyard.serving.adapters.records import RecordEncoder, RecordPolicy
from modelyard.serving.adapters.references import (
    CachedReferences,
    LocalReferences,
    ReferenceLoader,
    RegistryReferences,
)
from modelyard.serving.config import ServingSettings
from modelyard.serving.dataplane import DataPlane, ShadowRunner
from modelyard.serving.domain.deployment import ModelManager
from modelyard.serving.domain.ports import ArtifactSource, MetricsFactory, PlanSource, StatusReporter
from modelyard.serving.domain.stream import PredictionBuffer
from modelyard.serving.entrypoints.access import access_table
from modelyard.serving.entrypoints.events import DecisionHandlers
from modelyard.serving.entrypoints.explain_grpc import SERVICE_NAME as EXPLANATION_API
from modelyard.serving.entrypoints.explain_grpc import ExplanationServicer, add_explanation_service
from modelyard.serving.entrypoints.explain_rest import explanation_router
from modelyard.serving.entrypoints.grpc import InferenceServicer, add_inference_service
from modelyard.serving.entrypoints.rest import inference_router
from modelyard.serving.explanations import ExplanationLimits, Explanations
from modelyard.serving.handlers import ExecutionPolicy, Lifecycle

API_NAME: str = grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
VERSION = metadata.version("modelyard-serving")
STREAM_METRICS = PrometheusStreamMetrics()


@dataclass
class ServingParts:
    """Everything between the transports and the outside world."""

    settings: ServingSettings
    publisher: EventPublisher  # status reports and the prediction stream; started by the service
    manager: ModelManager
    dataplane: DataPlane
    lifecycle: Lifecycle
    stream: PredictionBuffer | None
    shadows: ShadowRunner
    pool: ThreadPoolExecutor
    explanations: Explanations

    async def close(self) -> None:
        await self.lifecycle.close()
        await self.explanations.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        await self.lifecycle.artifacts.close()
        await self.lifecycle.plans.close()


def artifact_source(settings: ServingSettings) -> ArtifactSource:
    if settings.artifact_source == "registry":
        token = settings.registry_token.get_secret_value() if settings.registry_token else None
        return RegistryArtifacts(settings.registry_address, token, tls=settings.tls.client)
    return LocalArtifacts(settings.models_path)


def plan_source(settings: ServingSettings) -> PlanSource:
    if settings.plan_source == "governance":
        token = settings.governance_token.get_secret_value() if settings.governance_token else None
        return GovernancePlans(
            settings.governance_address, token, timeout_s=settings.governance_timeout_s, tls=settings.tls.client
        )
    return PlanFile(settings.plans_path)


def explanations(settings: ServingSettings, manager: ModelManager, artifacts: ArtifactSource) -> Explanations:
    """Explanations in their own process pool, with background samples from the versions' reference datasets,
    taken from where the artifacts come from."""
    loader: ReferenceLoader = (
        RegistryReferences(artifacts)
        if isinstance(artifacts, RegistryArtifacts)
        else LocalReferences(settings.models_path)
    )
    return Explanations(
        manager,
        artifacts,
        CachedReferences(loader, settings.explain_background_rows),
        ProcessExplainer(
            settings.explain_workers, settings.explain_queue, settings.explain_permutations, settings.explain_niceness
        ),
        ExplanationLimits(max_rows=settings.explain_max_rows),
    )


def record_policy(settings: ServingSettings) -> RecordPolicy:
    return RecordPolicy(
        max_values=settings.stream_max_values,
        large_sample_rate=settings.stream_large_sample_rate,
        max_request_id_bytes=settings.stream_max_request_id_bytes,
        max_record_bytes=settings.stream_max_record_bytes,
        max_batch_bytes=settings.stream_max_batch_bytes,
    )


def build(
    settings: ServingSettings,
    *,
    status: StatusReporter | None = None,
    artifacts: ArtifactSource | None = None,
    plans: PlanSource | None = None,
    metrics: MetricsFactory | None = None,
) -> ServingParts:
    publisher = EventPublisher.from_settings(settings)
    manager = ModelManager()
    stream = PredictionBuffer(settings.stream_buffer, STREAM_METRICS) if settings.stream_enabled else None
    shadows = ShadowRunner(settings.shadow_queue, stream)
    pool = ThreadPoolExecutor(settings.pool_threads, thread_name_prefix="inference")
    artifacts = artifacts or artifact_source(settings)
    lifecycle = Lifecycle(
        manager,
        artifacts,
        OnnxLoader(intra_op_threads=settings.intra_op_threads),
        plans or plan_source(settings),
        status or KafkaStatusReporter(publisher, settings.worker_replica),
        metrics or PrometheusMetrics(),
        ExecutionPolicy(
            pool=pool,
            inline_below_s=settings.inline_below_us * 1e-6,
            drain_timeout_s=settings.drain_timeout_s,
            reject_non_finite=frozenset(settings.reject_non_finite),
            max_elements=settings.max_elements,
            max_batch_rows=settings.max_batch_rows,
            max_queue_delay_s=settings.max_queue_delay_us * 1e-6,
            batch_overhead_s=settings.batch_overhead_us * 1e-6,
        ),
        load_retry=Backoff(first_s=min(0.5, settings.artifact_retry_max_s), max_s=settings.artifact_retry_max_s),
    )
    dataplane = DataPlane(manager, stream, shadows)
    return ServingParts(
        settings,
        publisher,
        manager,
        dataplane,
        lifecycle,
        stream,
        shadows,
        pool,
        explanations(settings, manager, artifacts),
    )


def service(parts: ServingParts) -> Service:
    """The runnable serving service around wired parts."""
    settings, publisher = parts.settings, parts.publisher
    # One group per replica (each worker process is a replica of its own): every replica must enact every
    # decision. It starts at the latest offset because the startup plans, fetched once the consumer has joined,
    # cover everything decided before: a decision made between the two is both in the plans and on the topic
    # (enacting it twice is a no-op, by revision), and none can fall between them.
    # Only decisions signed by a trusted governance key reach the handlers; the rest are dead-lettered.
    consumer = EventConsumer.from_settings(
        settings,
        f"serving-{settings.worker_replica}",
        [GOVERNANCE_DECISIONS],
        auto_offset_reset="latest",
        trusted_keys=TrustedKeys.of("governance", settings.trusted_governance_keys),
    )
    DecisionHandlers(parts.lifecycle).register(consumer)
    startup_done = False

    async def load_startup_plans() -> None:
        nonlocal startup_done
        await consumer.joined()
        retry = Backoff(deadline_s=settings.startup_plans_deadline_s)
        await parts.lifecycle.load_startup_plans(retry)  # raises when the source stays away: the process exits
        startup_done = True

    async def startup_plans_loaded() -> bool:
        return startup_done

    async def planned_models_live() -> bool:
        # Ready means answering correctly now: not while a planned model has nothing live (its artifacts are
        # retried in the background); a plan refused for good was reported and does not hold readiness back.
        return not parts.manager.missing_models()

    listened = False

    async def listening_to_decisions() -> bool:
        # The consumer starts at the latest offset, so a decision is only surely seen once partitions are ours.
        # Only the start waits for that: later, a broker outage leaves the last good plans serving, which is
        # answering correctly (the outage shows as degraded).
        nonlocal listened
        listened = listened or bool(consumer.assignment)
        return listened

    tracer = trace.get_tracer("modelyard.serving") if settings.otlp_endpoint else None
    servicer = InferenceServicer(parts.dataplane, parts.lifecycle, VERSION, ready=lambda: running.ready, tracer=tracer)
    tasks = {"startup-plans": load_startup_plans, "shadows": parts.shadows.run}
    degraded_checks = {
        "kafka": kafka_check(settings.kafka_bootstrap, security=settings.kafka_security),
        "decisions-consumer": consumer.delivering,
    }
    on_stop = [parts.close, publisher.stop]
    if parts.stream is not None:
        stream = PredictionPublisher(
            parts.stream,
            publisher,
            RecordEncoder(record_policy(settings), STREAM_METRICS),
            STREAM_METRICS,
            interval_s=settings.stream_interval_s,
        )
        tasks["prediction-stream"] = stream.run
        degraded_checks["prediction-stream"] = stream.delivering
        on_stop.append(stream.flush)  # runs before publisher.stop: hooks stop in reverse order
    on_stop.append(consumer.stop)

    running = Service(
        settings,
        access=access_table(settings.inference_token_required),
        grpc_apis=[
            GrpcApi(API_NAME, lambda server: add_inference_service(servicer, server)),
            GrpcApi(
                EXPLANATION_API,
                lambda server: add_explanation_service(ExplanationServicer(parts.explanations), server),
            ),
        ],
        routers=[
            inference_router(
                parts.dataplane,
                parts.lifecycle,
                VERSION,
                ready=lambda: running.ready,
                max_json_bytes=settings.max_json_bytes,
            ),
            explanation_router(parts.explanations, settings.max_json_bytes),
        ],
        body_limits={"/v2/models/": settings.max_request_bytes},
        background_tasks=tasks,
        readiness_checks={
            "startup-plans": startup_plans_loaded,
            "planned-models": planned_models_live,
            "decisions": listening_to_decisions,
        },
        degraded_checks=degraded_checks,
        on_start=[publisher.start, consumer.start],
        on_stop=on_stop,
        worker=settings.worker,
    )
    return running
