"""What kind of failure an error is, transport-free: every service's domain errors (and the shared access and input
errors) carry an `ErrorKind`, and the edge (`modelyard.runtime.errors`) turns the kind into a gRPC status and an
HTTP code from one table. The numbers are gRPC's, so a kind stored as a number (a prediction record's
`status_code`) reads like an RPC status."""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ErrorKind(IntEnum):
    OK = 0
    CANCELLED = 1
    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class KindedError(Exception):
    """Base of the errors a caller may be told about (the message is safe to show them); `kind` says which."""

    kind: ClassVar[ErrorKind] = ErrorKind.INTERNAL
