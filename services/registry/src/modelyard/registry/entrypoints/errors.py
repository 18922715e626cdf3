"""The one mapping of registry and access errors to gRPC status codes and HTTP status codes."""

from __future__ import annotations

import grpc

from modelyard.auth import AuthError
from modelyard.registry.domain import errors as e
from modelyard.runtime import auth_grpc, auth_http

_CODES: dict[type[Exception], tuple[grpc.StatusCode, int]] = {
    e.InvalidArgument: (grpc.StatusCode.INVALID_ARGUMENT, 400),
    e.NotFound: (grpc.StatusCode.NOT_FOUND, 404),
    e.AlreadyExists: (grpc.StatusCode.ALREADY_EXISTS, 409),
    e.FailedPrecondition: (grpc.StatusCode.FAILED_PRECONDITION, 409),
    # The bytes received do not match what the client declared (or what was stored): unprocessable.
    e.DataLoss: (grpc.StatusCode.DATA_LOSS, 422),
    e.ResourceExhausted: (grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
    **{kind: (code, auth_http.STATUS[kind]) for kind, code in auth_grpc.STATUS.items()},
}

KNOWN_ERRORS = (e.RegistryError, AuthError)


def _codes(error: Exception) -> tuple[grpc.StatusCode, int]:
    for kind in type(error).__mro__:
        if kind in _CODES:
            return _CODES[kind]
    return grpc.StatusCode.INTERNAL, 500


def grpc_status(error: Exception) -> grpc.StatusCode:
    return _codes(error)[0]


def http_status(error: Exception) -> int:
    return _codes(error)[1]
