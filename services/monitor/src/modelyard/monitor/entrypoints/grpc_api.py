"""gRPC entrypoint: `modelyard.monitor.v1.MonitorService`; converts messages and delegates to the monitor."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import grpc

from modelyard.contracts.events.v1 import common_pb2
from modelyard.contracts.monitor.v1 import monitor_service_pb2 as pb
from modelyard.contracts.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from modelyard.events.envelope import Event
from modelyard.events.topics import MONITOR_FEEDBACK, Topic
from modelyard.inputs import time_of
from modelyard.monitor.adapters.events import (
    MAX_REQUEST_ID_CHARS,
    SEVERITIES,
    SIGNALS,
    Label,
    checked_label,
    evidence_message,
    feedback_batches,
    feedback_event,
    timestamp,
)
from modelyard.monitor.domain.errors import InvalidArgument
from modelyard.monitor.domain.evaluation import WindowReport
from modelyard.monitor.domain.prediction_log import PredictionTrace
from modelyard.monitor.domain.views import IncidentView, VersionStatus
from modelyard.monitor.entrypoints.errors import ERRORS
from modelyard.monitor.handlers import Monitor
from modelyard.runtime import GrpcApi
from modelyard.runtime.errors import client_message

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["MonitorService"].full_name


# Labels of a feedback stream are published in rounds of this many (one round of broker acknowledgements each), as
# `FeedbackBatch` events.
FEEDBACK_ROUND = 20_000


class FeedbackPublisher(Protocol):
    """What SendFeedback needs: publish events (an `EventPublisher`)."""

    async def publish_many(self, topic: Topic, events: Sequence[Event]) -> None: ...


class MonitorServicer(pb_grpc.MonitorServiceServicer):
    def __init__(self, monitor: Monitor, feedback: FeedbackPublisher) -> None:
        self.monitor = monitor
        self.feedback = feedback

    async def SendFeedback(
        self, request: pb.SendFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> pb.SendFeedbackResponse:
        try:
            event = feedback_event(_label(request))
        except ERRORS.known as exc:
            await ERRORS.abort(context, exc)
        # Through the topic, not straight into the store: the instance that owns the model's partition joins it.
        await self.feedback.publish_many(MONITOR_FEEDBACK, [event])
        return pb.SendFeedbackResponse()

    async def SendFeedbackStream(
        self, request_iterator: AsyncIterator[pb.SendFeedbackStreamRequest], context: grpc.aio.ServicerContext
    ) -> pb.SendFeedbackStreamResponse:
        accepted = 0
        batch: list[Label] = []
        async for request in request_iterator:
            try:
                batch.append(_label(request))
            except ERRORS.known as exc:
                await self._publish(batch)  # the valid labels before it are kept
                accepted += len(batch)
                message = f"label {accepted}: {client_message(exc)}; the {accepted} before it were accepted"
                await context.abort(ERRORS.grpc(exc), message)
            if len(batch) >= FEEDBACK_ROUND:
                await self._publish(batch)
                accepted += len(batch)
                batch = []
        await self._publish(batch)
        return pb.SendFeedbackStreamResponse(accepted=accepted + len(batch))

    async def _publish(self, labels: Sequence[Label]) -> None:
        await self.feedback.publish_many(MONITOR_FEEDBACK, feedback_batches(labels))

    async def GetStatus(self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext) -> pb.GetStatusResponse:
        statuses = await asyncio.to_thread(self.monitor.statuses, request.model_name)
        return pb.GetStatusResponse(
            versions=[status_message(s) for s in statuses], config_hash=self.monitor.policy.config_hash
        )

    async def ListWindows(
        self, request: pb.ListWindowsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWindowsResponse:
        reports = await asyncio.to_thread(
            self.monitor.window_reports, request.model_name, request.version, request.limit or 100
        )
        return pb.ListWindowsResponse(windows=[window_message(r, request.feature) for r in reports])

    async def ListIncidents(
        self, request: pb.ListIncidentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListIncidentsResponse:
        views = await asyncio.to_thread(
            lambda: self.monitor.incident_views(
                request.model_name, open_only=request.open_only, limit=request.limit or 100
            )
        )
        return pb.ListIncidentsResponse(incidents=[incident_message(v) for v in views])

    async def ListPerformance(
        self, request: pb.ListPerformanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPerformanceResponse:
        history = await asyncio.to_thread(
            self.monitor.performance_windows, request.model_name, request.version, request.limit or 100
        )
        return pb.ListPerformanceResponse(
            baseline={
                name: pb.MetricBaseline(value=m.value, standard_error=m.standard_error)
                for name, m in history.baseline.items()
            },
            windows=[
                pb.PerformanceWindow(
                    start=timestamp(w.start),
                    end=timestamp(w.end),
                    predictions=w.predictions,
                    labelled=w.labelled,
                    metrics=dict(w.metrics),
                )
                for w in history.windows
            ],
        )

    async def GetPrediction(
        self, request: pb.GetPredictionRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPredictionResponse:
        try:
            found = await asyncio.to_thread(self.monitor.prediction_trace, _request_id(request.request_id))
        except ERRORS.known as exc:
            await ERRORS.abort(context, exc)
        return prediction_message(found)

    async def Rebaseline(
        self, request: pb.RebaselineRequest, context: grpc.aio.ServicerContext
    ) -> pb.RebaselineResponse:
        try:
            profile = await asyncio.to_thread(self.monitor.rebaseline, request.model_name, request.version)
        except ERRORS.known as exc:
            await ERRORS.abort(context, exc)
        return pb.RebaselineResponse(reference_id=profile.id)


def _label(request: pb.SendFeedbackRequest | pb.SendFeedbackStreamRequest) -> Label:
    """The label a request stands for; InvalidArgument when it lacks a field or one is out of range."""
    kind = request.WhichOneof("truth")
    if not request.request_id or not request.model_name or not kind:
        raise InvalidArgument("request_id, model_name and a label or target are required")
    truth = request.label if kind == "label" else request.target
    return checked_label(
        request.request_id, request.model_name, truth, time_of(request, "event_time") or datetime.now(UTC)
    )


def _request_id(request_id: str) -> str:
    if not request_id or len(request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidArgument(f"request_id is required, at most {MAX_REQUEST_ID_CHARS} characters")
    return request_id


def grpc_api(monitor: Monitor, feedback: FeedbackPublisher) -> GrpcApi:
    servicer = MonitorServicer(monitor, feedback)
    add: Callable[[MonitorServicer, grpc.aio.Server], None] = pb_grpc.add_MonitorServiceServicer_to_server
    return GrpcApi(SERVICE_NAME, lambda server: add(servicer, server))


def status_message(s: VersionStatus) -> pb.VersionStatus:
    message = pb.VersionStatus(
        model_name=s.model_name,
        version=s.model_version,
        reference_id=s.reference_id,
        windows_closed=s.windows_closed,
        records_seen=s.records_seen,
        late_records=s.late_records,
        open_incidents=s.open_incidents,
        performance=s.performance,
        label_coverage=s.label_coverage,
    )
    if s.last_window is not None:
        message.last_window.CopyFrom(window_message(s.last_window, ""))
    return message


def window_message(r: WindowReport, feature: str) -> pb.WindowSummary:
    return pb.WindowSummary(
        window_id=r.window,
        start=timestamp(r.start),
        end=timestamp(r.end),
        n=r.n,
        tested=r.tested,
        alpha=0.0 if math.isnan(r.alpha) else r.alpha,
        closed_by=r.closed_by,
        features=[
            pb.FeatureWindowResult(
                feature=f.test.feature,
                signal=SIGNALS[f.signal],
                statistic=f.test.statistic,
                value=f.test.value,
                p_value=f.test.p_value,
                threshold=f.threshold,
                effect_size=f.test.effect_size,
                breached=f.breached,
                effects=dict(f.test.effects),
            )
            for f in r.features
            if not feature or f.test.feature == feature
        ],
        quality=dict(r.quality),
        operations=dict(r.operations),
        estimated_performance=dict(r.estimated),
    )


def incident_message(v: IncidentView) -> pb.Incident:
    message = pb.Incident(
        incident_id=v.incident_id,
        model_name=v.model_name,
        version=v.model_version,
        signal=SIGNALS[v.signal],
        feature=v.feature,
        severity=SEVERITIES[v.severity],
        open=v.open,
        opened_at=timestamp(v.opened_at),
        evidence=[evidence_message(e) for e in v.evidence],
        reference_id=v.reference_id,
        config_hash=v.config_hash,
    )
    if v.resolved_at is not None:
        message.resolved_at.CopyFrom(timestamp(v.resolved_at))
    return message


def prediction_message(found: PredictionTrace) -> pb.GetPredictionResponse:
    p = found.prediction
    logged = pb.LoggedPrediction(
        request_id=p.request_id,
        version=common_pb2.ModelVersionRef(model_name=p.model_name, version=p.model_version, digest=p.digest),
        plan_revision=p.plan_revision,
        event_time=timestamp(p.event_time),
        inputs=[_tensor(name, values) for name, values in p.inputs.items()],
        outputs=[_tensor(name, values) for name, values in p.outputs.items()],
        logged_at=timestamp(p.logged_at),
    )
    if isinstance(p.truth, str):
        logged.label = p.truth
    elif p.truth is not None:
        logged.target = p.truth
    response = pb.GetPredictionResponse(prediction=logged, incidents=[incident_message(v) for v in found.incidents])
    if found.window is not None:
        response.window.CopyFrom(window_message(found.window, ""))
    elif found.window_start is not None and found.window_end is not None:
        response.window.CopyFrom(
            pb.WindowSummary(window_id=p.window, start=timestamp(found.window_start), end=timestamp(found.window_end))
        )
    return response


def _tensor(name: str, values: list[float] | list[str]) -> pb.LoggedTensor:
    if values and isinstance(values[0], str):
        return pb.LoggedTensor(name=name, strings=[str(v) for v in values])
    return pb.LoggedTensor(name=name, values=[float(v) for v in values])
