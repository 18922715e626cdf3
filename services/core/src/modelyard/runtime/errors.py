"""The one mapping of a service's errors to gRPC and HTTP status codes, shared by its gRPC and REST transports.

Each service declares its domain errors' codes; the access errors of `modelyard.auth` are added here, so every
service answers a bad token or a missing role the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc

from modelyard.auth import AuthError
from modelyard.runtime import auth_grpc, auth_http

Codes = tuple[grpc.StatusCode, int]
UNEXPECTED: Codes = (grpc.StatusCode.INTERNAL, 500)


class ErrorStatus:
    def __init__(self, domain_error: type[Exception], codes: Mapping[type[Exception], Codes]) -> None:
        self.known: tuple[type[Exception], ...] = (domain_error, AuthError)
        self._codes: dict[type[Exception], Codes] = {
            **codes,
            **{kind: (code, auth_http.STATUS[kind]) for kind, code in auth_grpc.STATUS.items()},
        }

    def of(self, error: Exception) -> Codes:
        """gRPC and HTTP status of an error: its nearest mapped class, INTERNAL / 500 for anything unexpected."""
        for kind in type(error).__mro__:
            if kind in self._codes:
                return self._codes[kind]
        return UNEXPECTED

    def grpc(self, error: Exception) -> grpc.StatusCode:
        return self.of(error)[0]

    def http(self, error: Exception) -> int:
        return self.of(error)[1]
