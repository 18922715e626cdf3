"""The one mapping of registry errors to gRPC status codes and HTTP status codes."""

from __future__ import annotations

import grpc

from modelyard.registry.domain import errors as e
from modelyard.runtime.errors import ErrorStatus

ERRORS = ErrorStatus(
    e.RegistryError,
    {
        e.InvalidArgument: (grpc.StatusCode.INVALID_ARGUMENT, 400),
        e.NotFound: (grpc.StatusCode.NOT_FOUND, 404),
        e.AlreadyExists: (grpc.StatusCode.ALREADY_EXISTS, 409),
        e.FailedPrecondition: (grpc.StatusCode.FAILED_PRECONDITION, 409),
        # The bytes received do not match what the client declared (or what was stored): unprocessable.
        e.DataLoss: (grpc.StatusCode.DATA_LOSS, 422),
        e.ResourceExhausted: (grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
    },
)
KNOWN_ERRORS = ERRORS.known
grpc_status = ERRORS.grpc
http_status = ERRORS.http
