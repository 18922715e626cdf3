"""Serving's access table: who may call each method of `inference.GRPCInferenceService` (and of
`modelyard.serving.v1.ExplanationService`) and its REST route of the same name.

Liveness and readiness (of the server and of a model) stay open for probes and load balancers. The repository
calls change what is served, so they need admin or service. Inference, explanations and metadata need the
`inference` role only when `auth.require_inference_token` is on (the production default); otherwise anyone on the
network may call the models, as with Triton or KServe behind their own gateway.
"""

from __future__ import annotations

from modelyard.access import OPEN, Rule, roles
from modelyard.auth import Role


def access_table(inference_token_required: bool) -> dict[str, Rule]:
    inference = roles(Role.INFERENCE) if inference_token_required else OPEN
    metadata = roles(Role.INFERENCE, Role.VIEWER) if inference_token_required else OPEN
    manage = roles(Role.SERVICE)
    return {
        "ServerLive": OPEN,
        "ServerReady": OPEN,
        "ModelReady": OPEN,
        "ServerMetadata": metadata,
        "ModelMetadata": metadata,
        "ModelInfer": inference,
        "Explain": inference,  # modelyard.serving.v1.ExplanationService and POST .../explain
        "RepositoryIndex": manage,
        "RepositoryModelLoad": manage,
        "RepositoryModelUnload": manage,
    }
