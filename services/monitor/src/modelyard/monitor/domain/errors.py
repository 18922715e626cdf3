"""The monitor's domain errors; each carries its kind, which the edge maps to a gRPC status and an HTTP code."""

from modelyard.errors import ErrorKind, KindedError


class MonitorError(KindedError):
    """Base of every error the monitor raises on purpose."""


class ReferenceDataError(MonitorError):
    """A reference dataset that cannot be profiled (no rows, no columns, ragged, unreadable)."""

    kind = ErrorKind.FAILED_PRECONDITION


class ReferenceNotFound(MonitorError):
    """No reference dataset or profile exists for a model version."""

    kind = ErrorKind.NOT_FOUND


class ReferenceUnavailable(MonitorError):
    """The reference source cannot answer now (unreachable, or the version is still being registered): ask later."""

    kind = ErrorKind.UNAVAILABLE


class InvalidArgument(MonitorError):
    """A request that cannot be right however often it is sent: a field longer than the store keeps, a time out
    of range, or one the registry refused as malformed."""

    kind = ErrorKind.INVALID_ARGUMENT
