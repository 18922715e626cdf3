"""The explanation use case behind `ExplanationService/Explain` and `POST /v2/models/{name}/explain`.

A request is routed and decoded exactly as an inference (`ModelManager.resolve`, the version's codec), so an
unknown model or a malformed row gets the same status and message; then the version's background sample (from its
reference dataset, cached) and the request's rows go to the explanation pool, never to the inference pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelyard.attributions import method
from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.serving.domain.deployment import ModelManager
from modelyard.serving.domain.errors import InvalidArgument, ResourceExhausted
from modelyard.serving.domain.explanation import (
    AttributionPool,
    ExplainOptions,
    Explanation,
    ReferenceSource,
    explained_output,
    features_of,
    layout_of,
    row_columns,
    select,
)
from modelyard.serving.domain.ports import ArtifactSource


@dataclass(frozen=True)
class ExplanationLimits:
    max_rows: int = 16  # rows explained per request


class Explanations:
    def __init__(
        self,
        manager: ModelManager,
        artifacts: ArtifactSource,
        references: ReferenceSource,
        explainer: AttributionPool,
        limits: ExplanationLimits,
    ) -> None:
        self.manager = manager
        self.artifacts = artifacts
        self.references = references
        self.explainer = explainer
        self.limits = limits

    async def explain(self, request: pb.ModelInferRequest, options: ExplainOptions) -> Explanation:
        """Raises a ServingError (with its kind) for anything but success."""
        _, served = self.manager.resolve(request.model_name, request.model_version, request.id)
        inputs = served.codec.decode(request).inputs
        output = explained_output(served.codec.signature, options)
        rows = len(next(iter(inputs.values())))
        if rows == 0:
            raise InvalidArgument("no rows to explain")
        if rows > self.limits.max_rows:
            raise ResourceExhausted(f"{rows} rows to explain: at most {self.limits.max_rows} per request")
        features = features_of(inputs)
        layout = layout_of(served.codec.signature, inputs)
        with self.explainer.reserve():
            reference = await self.references.fetch(served.ref)
            background = reference.background(features, f"{served.ref}")
            attributions = await self.explainer.run(
                served.ref,
                lambda: self.artifacts.fetch(served.ref),
                layout,
                output.name,
                row_columns(inputs),
                background,
            )
        return Explanation(
            served.ref,
            request.id,
            output.name,
            tuple(reference.name(f) for f in features),
            select(attributions.values, attributions.base_values, attributions.predictions, options),
            method(self.explainer.permutations),
            len(background[0]),
            reference.source,
        )

    async def close(self) -> None:
        self.explainer.close()
        await self.references.close()
