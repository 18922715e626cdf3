"""The one exception hierarchy of serving, mapped once to gRPC status and HTTP codes at the edge."""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    """Status codes with gRPC's numbers, so a prediction record's `status_code` reads like the RPC's status."""

    OK = 0
    CANCELLED = 1
    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    RESOURCE_EXHAUSTED = 8
    INTERNAL = 13
    UNAVAILABLE = 14


class ServingError(Exception):
    code = Code.INTERNAL


class InvalidArgument(ServingError):
    """The request does not fit the model: datatype, shape, element count, raw length, missing input..."""

    code = Code.INVALID_ARGUMENT


class NotFound(ServingError):
    """No such model, or no such version of it."""

    code = Code.NOT_FOUND


class Unavailable(ServingError):
    """The model or version is known but not (yet, or any more) served."""

    code = Code.UNAVAILABLE


class ResourceExhausted(ServingError):
    """The request is larger than this server accepts."""

    code = Code.RESOURCE_EXHAUSTED


class ArtifactError(ServingError):
    """An artifact could not be fetched, or is not what the plan says (digest mismatch)."""

    code = Code.UNAVAILABLE


class PlanSourceError(ServingError):
    """The deployment plans could not be read. `transient` when asking again later may succeed (governance away
    or restarting); not when it refused (a wrong token, say)."""

    code = Code.UNAVAILABLE

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
