"""`POST /v2/models/{name}[/versions/{v}]/explain`: the inference request's JSON (or binary tensors), plus an
optional `"explain": {"output": "probabilities", "classes": "predicted" | "all" | <class index>}`."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response

from modelyard.runtime.errors import client_message
from modelyard.serving.domain.errors import InvalidArgument, ResourceExhausted, ServingError
from modelyard.serving.domain.explanation import Classes, ExplainOptions, Explanation, PoolFull
from modelyard.serving.entrypoints.errors import ERRORS
from modelyard.serving.entrypoints.rest import HEADER_LENGTH, to_infer_request
from modelyard.serving.entrypoints.rest import _json_length as json_length
from modelyard.serving.explanations import Explanations

RETRY_AFTER_S = 1


def explanation_router(explanations: Explanations, max_json_bytes: int) -> APIRouter:
    """The route is named after the gRPC method it stands for (`Explain`): its operation in the access table."""
    router = APIRouter(prefix="/v2", tags=["explanations"])

    @router.post("/models/{model}/explain", name="Explain")
    @router.post("/models/{model}/versions/{model_version}/explain", name="Explain")
    async def explain(model: str, request: Request, model_version: str = "") -> Response:
        body = await request.body()
        header_length = request.headers.get(HEADER_LENGTH)
        try:
            json_bytes = json_length(body, header_length)
            if json_bytes > max_json_bytes:
                raise ResourceExhausted(f"JSON part of {json_bytes} bytes is over {max_json_bytes}")
            message, _ = to_infer_request(model, model_version, body, header_length)
            options = explain_options(json.loads(body[:json_bytes]).get("explain"))
            explanation = await explanations.explain(message, options)
        except PoolFull as exc:  # busy, not too large: come back shortly
            headers = {"Retry-After": str(RETRY_AFTER_S)}
            return Response(json.dumps({"error": client_message(exc)}), 429, headers, "application/json")
        except ServingError as exc:
            return Response(json.dumps({"error": client_message(exc)}), ERRORS.http(exc), media_type="application/json")
        return Response(json.dumps(to_json(explanation)), media_type="application/json")

    return router


def explain_options(document: Any) -> ExplainOptions:
    if document is None:
        return ExplainOptions()
    if not isinstance(document, dict):
        raise InvalidArgument('"explain" must be a JSON object')
    output, classes = document.get("output", ""), document.get("classes", "predicted")
    if not isinstance(output, str):
        raise InvalidArgument('"explain.output" must be an output name')
    if isinstance(classes, int) and not isinstance(classes, bool):
        return ExplainOptions(output, Classes.INDEX, classes)
    if classes not in (Classes.PREDICTED, Classes.ALL):
        raise InvalidArgument('"explain.classes" must be "predicted", "all" or a class index')
    return ExplainOptions(output, Classes(classes))


def to_json(explanation: Explanation) -> dict[str, Any]:
    return {
        "model_name": explanation.ref.model,
        "model_version": str(explanation.ref.version),
        "id": explanation.request_id,
        "output": explanation.output,
        "feature_names": list(explanation.feature_names),
        "rows": [
            {
                "outputs": [
                    {
                        "index": o.index,
                        "base_value": o.base_value,
                        "prediction": o.prediction,
                        "attributions": list(o.attributions),
                    }
                    for o in row
                ]
            }
            for row in explanation.rows
        ],
        "method": explanation.method,
        "background_rows": explanation.background_rows,
        "background_source": explanation.background_source,
    }
