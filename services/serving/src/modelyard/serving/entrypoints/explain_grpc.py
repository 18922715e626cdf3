"""`modelyard.serving.v1.ExplanationService`: converts and delegates to the explanation use case."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from modelyard.contracts.serving.v1 import explanation_service_pb2 as pb
from modelyard.contracts.serving.v1 import explanation_service_pb2_grpc as pb_grpc
from modelyard.serving.domain.errors import ServingError
from modelyard.serving.domain.explanation import Classes, ExplainOptions, Explanation
from modelyard.serving.entrypoints.errors import ERRORS
from modelyard.serving.explanations import Explanations

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["ExplanationService"].full_name
CLASSES = {
    pb.CLASS_SELECTION_UNSPECIFIED: Classes.PREDICTED,
    pb.CLASS_SELECTION_PREDICTED: Classes.PREDICTED,
    pb.CLASS_SELECTION_ALL: Classes.ALL,
    pb.CLASS_SELECTION_INDEX: Classes.INDEX,
}


class ExplanationServicer(pb_grpc.ExplanationServiceServicer):
    def __init__(self, explanations: Explanations) -> None:
        self.explanations = explanations

    async def Explain(self, request: pb.ExplainRequest, context: grpc.aio.ServicerContext) -> pb.ExplainResponse:
        options = ExplainOptions(request.output, CLASSES.get(request.classes, Classes.PREDICTED), request.class_index)
        try:
            return to_response(await self.explanations.explain(request.inputs, options))
        except ServingError as exc:
            await ERRORS.abort(context, exc)


def to_response(explanation: Explanation) -> pb.ExplainResponse:
    return pb.ExplainResponse(
        model_name=explanation.ref.model,
        model_version=str(explanation.ref.version),
        id=explanation.request_id,
        output=explanation.output,
        feature_names=explanation.feature_names,
        rows=[
            pb.RowExplanation(
                outputs=[
                    pb.OutputExplanation(
                        index=o.index, base_value=o.base_value, prediction=o.prediction, attributions=o.attributions
                    )
                    for o in row
                ]
            )
            for row in explanation.rows
        ],
        method=explanation.method,
        background_rows=explanation.background_rows,
        background_source=explanation.background_source,
    )


def add_explanation_service(servicer: ExplanationServicer, server: grpc.aio.Server) -> None:
    add: Callable[[ExplanationServicer, grpc.aio.Server], None] = pb_grpc.add_ExplanationServiceServicer_to_server
    add(servicer, server)
