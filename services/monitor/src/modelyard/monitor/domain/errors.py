"""The monitor's domain errors, mapped once to gRPC status and HTTP codes at the edge."""


class MonitorError(Exception):
    """Base of every error the monitor raises on purpose."""


class ReferenceDataError(MonitorError):
    """A reference dataset that cannot be profiled (no rows, no columns, ragged, unreadable)."""


class ReferenceNotFound(MonitorError):
    """No reference dataset or profile exists for a model version."""


class ReferenceUnavailable(MonitorError):
    """The reference source cannot answer now (unreachable, or the version is still being registered): ask later."""


class InvalidArgument(MonitorError):
    """A request that cannot be right however often it is sent: a field longer than the store keeps, a time out
    of range, or one the registry refused as malformed."""
