"""The one exception hierarchy of serving; each error carries its kind, mapped to gRPC and HTTP codes at the edge."""

from __future__ import annotations

from modelyard.errors import ErrorKind, KindedError

# What an inference can end as: the kinds serving's metrics count (each gets a series from the start).
OUTCOMES = (
    ErrorKind.OK,
    ErrorKind.CANCELLED,
    ErrorKind.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND,
    ErrorKind.RESOURCE_EXHAUSTED,
    ErrorKind.INTERNAL,
    ErrorKind.UNAVAILABLE,
)


class ServingError(KindedError):
    """Base of serving's errors; the kind is also the prediction record's `status_code`."""


class InvalidArgument(ServingError):
    """The request does not fit the model: datatype, shape, element count, raw length, missing input..."""

    kind = ErrorKind.INVALID_ARGUMENT


class NotFound(ServingError):
    """No such model, or no such version of it."""

    kind = ErrorKind.NOT_FOUND


class Unavailable(ServingError):
    """The model or version is known but not (yet, or any more) served."""

    kind = ErrorKind.UNAVAILABLE


class ResourceExhausted(ServingError):
    """The request is larger than this server accepts."""

    kind = ErrorKind.RESOURCE_EXHAUSTED


class ArtifactError(ServingError):
    """An artifact could not be fetched, or is not what the plan says (digest mismatch)."""

    kind = ErrorKind.UNAVAILABLE


class PlanSourceError(ServingError):
    """The deployment plans could not be read. `transient` when asking again later may succeed (governance away
    or restarting); not when it refused (a wrong token, say)."""

    kind = ErrorKind.UNAVAILABLE

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
