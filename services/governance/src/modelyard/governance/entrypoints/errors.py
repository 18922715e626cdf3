"""The one mapping of governance and access errors to gRPC status codes and HTTP status codes."""

from __future__ import annotations

import grpc

from modelyard.auth import AuthError
from modelyard.governance.domain import errors as e
from modelyard.runtime import auth_grpc, auth_http

_CODES: dict[type[Exception], tuple[grpc.StatusCode, int]] = {
    e.InvalidArgument: (grpc.StatusCode.INVALID_ARGUMENT, 400),
    e.NotFound: (grpc.StatusCode.NOT_FOUND, 404),
    e.AlreadyExists: (grpc.StatusCode.ALREADY_EXISTS, 409),
    e.FailedPrecondition: (grpc.StatusCode.FAILED_PRECONDITION, 409),
    e.SeparationOfDuties: (grpc.StatusCode.PERMISSION_DENIED, 403),
    e.CatalogUnavailable: (grpc.StatusCode.UNAVAILABLE, 503),
    **{kind: (code, auth_http.STATUS[kind]) for kind, code in auth_grpc.STATUS.items()},
}

KNOWN_ERRORS = (e.GovernanceError, AuthError)


def status_of(error: Exception) -> tuple[grpc.StatusCode, int]:
    """gRPC status and HTTP status of an error (INTERNAL / 500 for anything unexpected)."""
    for kind in type(error).__mro__:
        if kind in _CODES:
            return _CODES[kind]
    return grpc.StatusCode.INTERNAL, 500
