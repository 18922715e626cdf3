"""REST entrypoint (JSON under /api/v1) over the same use cases as the gRPC API."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field, model_validator

from modelyard.events.topics import MONITOR_FEEDBACK
from modelyard.monitor.adapters.events import (
    MAX_LABEL_CHARS,
    MAX_NAME_CHARS,
    MAX_REQUEST_ID_CHARS,
    Label,
    checked_label,
    feedback_batches,
    feedback_event,
)
from modelyard.monitor.domain.views import json_safe
from modelyard.monitor.entrypoints.errors import ERRORS
from modelyard.monitor.entrypoints.grpc_api import FeedbackPublisher
from modelyard.monitor.handlers import Monitor
from modelyard.runtime.errors import client_message

# The batch feedback route, which has a body limit of its own (`feedback_batch_max_bytes`), and its item cap.
API_PREFIX = "/api/v1"
FEEDBACK_BATCH_PATH = "/feedback/batch"
MAX_FEEDBACK_BATCH = 50_000

# A model version as the registry numbers it (int64).
Version = Annotated[int, Path(ge=1, le=2**63 - 1)]


class Feedback(BaseModel):
    request_id: str = Field(min_length=1, max_length=MAX_REQUEST_ID_CHARS)
    model_name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    label: str | None = Field(None, max_length=MAX_LABEL_CHARS)
    target: float | None = None
    event_time: datetime | None = None

    @model_validator(mode="after")
    def _one_truth(self) -> Feedback:
        if (self.label is None) == (self.target is None):
            raise ValueError("exactly one of label and target")
        return self


class FeedbackBatch(BaseModel):
    """Labels in bulk: validated one by one before any is published, so a bad one (its index in the 422's `loc`)
    costs nothing but a corrected retry."""

    labels: list[Feedback] = Field(min_length=1, max_length=MAX_FEEDBACK_BATCH)


def router(monitor: Monitor, feedback: FeedbackPublisher) -> APIRouter:
    """Each route is named after the gRPC method it stands for: its operation in the access table."""
    api = APIRouter(prefix=API_PREFIX, tags=["monitor"])

    @api.get("/status", name="GetStatus")
    async def status(model_name: str = "") -> list[dict[str, Any]]:
        return [json_safe(asdict(s)) for s in await asyncio.to_thread(monitor.statuses, model_name)]

    @api.get("/models/{model_name}/versions/{version}/windows", name="ListWindows")
    async def windows(
        model_name: str, version: Version, feature: str = "", limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[dict[str, Any]]:
        reports = await asyncio.to_thread(monitor.window_reports, model_name, version, limit)
        result = []
        for report in reports:
            document = asdict(report)
            if feature:
                document["features"] = [f for f in document["features"] if f["test"]["feature"] == feature]
            result.append(json_safe(document))
        return result

    @api.get("/incidents", name="ListIncidents")
    async def incidents(
        model_name: str = "", open_only: bool = False, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[dict[str, Any]]:
        views = await asyncio.to_thread(lambda: monitor.incident_views(model_name, open_only=open_only, limit=limit))
        return [json_safe(asdict(v)) for v in views]

    @api.get("/models/{model_name}/versions/{version}/performance", name="ListPerformance")
    async def performance(
        model_name: str, version: Version, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> dict[str, Any]:
        history = await asyncio.to_thread(monitor.performance_windows, model_name, version, limit)
        return dict(json_safe(history))

    @api.get("/predictions/{request_id}", name="GetPrediction")
    async def prediction(request_id: Annotated[str, Path(min_length=1, max_length=MAX_REQUEST_ID_CHARS)]) -> Any:
        try:
            found = await asyncio.to_thread(monitor.prediction_trace, request_id)
        except ERRORS.known as exc:
            raise _http_error(exc) from exc
        return json_safe(found)

    @api.get("/models/{model_name}/snapshots", name="ListSnapshots")
    async def snapshots(model_name: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        """The model's retraining snapshots (dataset artifacts in the registry), newest first."""
        return [json_safe(asdict(v)) for v in await asyncio.to_thread(monitor.snapshots, model_name, limit)]

    @api.post("/models/{model_name}/versions/{version}/rebaseline", name="Rebaseline")
    async def rebaseline(model_name: str, version: Version) -> dict[str, str]:
        try:
            profile = await asyncio.to_thread(monitor.rebaseline, model_name, version)
        except ERRORS.known as exc:
            raise _http_error(exc) from exc
        return {"reference_id": profile.id}

    @api.post("/feedback", status_code=202, name="SendFeedback")
    async def send_feedback(body: Feedback) -> dict[str, str]:
        event = feedback_event(*_labels([body]))
        await feedback.publish_many(MONITOR_FEEDBACK, [event])
        return {"event_id": event.id}

    @api.post(FEEDBACK_BATCH_PATH, status_code=202, name="SendFeedbackStream")
    async def send_feedback_batch(body: FeedbackBatch) -> dict[str, int]:
        labels = _labels(body.labels)
        await feedback.publish_many(MONITOR_FEEDBACK, feedback_batches(labels))
        return {"accepted": len(labels)}

    return api


def _labels(labels: list[Feedback]) -> list[Label]:
    now = datetime.now(UTC)
    checked = []
    for i, body in enumerate(labels):
        truth: str | float = body.label if body.label is not None else float(body.target or 0.0)
        try:
            checked.append(checked_label(body.request_id, body.model_name, truth, body.event_time or now))
        except ERRORS.known as exc:
            where = f"label {i}: " if len(labels) > 1 else ""
            raise HTTPException(ERRORS.http(exc), where + client_message(exc)) from exc
    return checked


def _http_error(error: Exception) -> HTTPException:
    return HTTPException(ERRORS.http(error), client_message(error))
