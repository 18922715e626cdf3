"""The one mapping of monitor errors to gRPC status codes and HTTP status codes."""

from __future__ import annotations

import grpc

from modelyard.monitor.domain import errors as e
from modelyard.runtime.errors import ErrorStatus

ERRORS = ErrorStatus(
    e.MonitorError,
    {
        e.InvalidArgument: (grpc.StatusCode.INVALID_ARGUMENT, 400),
        e.ReferenceNotFound: (grpc.StatusCode.NOT_FOUND, 404),
        e.ReferenceDataError: (grpc.StatusCode.FAILED_PRECONDITION, 422),
        e.ReferenceUnavailable: (grpc.StatusCode.UNAVAILABLE, 503),
    },
)
KNOWN_ERRORS = ERRORS.known
status_of = ERRORS.of
