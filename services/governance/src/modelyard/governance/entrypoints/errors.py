"""The one mapping of governance errors to gRPC status codes and HTTP status codes."""

from __future__ import annotations

import grpc

from modelyard.governance.domain import errors as e
from modelyard.runtime.errors import ErrorStatus

ERRORS = ErrorStatus(
    e.GovernanceError,
    {
        e.InvalidArgument: (grpc.StatusCode.INVALID_ARGUMENT, 400),
        e.NotFound: (grpc.StatusCode.NOT_FOUND, 404),
        e.AlreadyExists: (grpc.StatusCode.ALREADY_EXISTS, 409),
        e.FailedPrecondition: (grpc.StatusCode.FAILED_PRECONDITION, 409),
        e.SeparationOfDuties: (grpc.StatusCode.PERMISSION_DENIED, 403),
        e.CatalogUnavailable: (grpc.StatusCode.UNAVAILABLE, 503),
        e.SignerNotReady: (grpc.StatusCode.UNAVAILABLE, 503),
    },
)
KNOWN_ERRORS = ERRORS.known
status_of = ERRORS.of
