"""The governance service's one exception hierarchy; each error carries its kind, which the edge maps to a gRPC
status and an HTTP code."""

from __future__ import annotations

from modelyard.errors import ErrorKind, KindedError


class GovernanceError(KindedError):
    """Base of every error a governance caller can be told about; the message is safe to show them."""


class InvalidArgument(GovernanceError):
    """Malformed input: an empty model name, a version below 1, an unknown alias."""

    kind = ErrorKind.INVALID_ARGUMENT


class NotFound(GovernanceError):
    """An unknown model, version, promotion request or deployment plan."""

    kind = ErrorKind.NOT_FOUND


class AlreadyExists(GovernanceError):
    """The same principal approving the same request twice, or a second open request for the same promotion."""

    kind = ErrorKind.ALREADY_EXISTS


class FailedPrecondition(GovernanceError):
    """The request is well formed but the state forbids it (approving a rejected or superseded request)."""

    kind = ErrorKind.FAILED_PRECONDITION


class ArtifactChanged(FailedPrecondition):
    """The version's artifact is not the one the request was made for: the request is void."""


class AuditTampered(FailedPrecondition):
    """The audit chain in the database does not extend the last checkpoint governance signed (rewritten or cut):
    the signer refuses to sign over it. `seq` is the entry the refusal is about."""

    def __init__(self, message: str, seq: int) -> None:
        super().__init__(message)
        self.seq = seq


class SeparationOfDuties(GovernanceError):
    """A principal may not approve what they registered or requested, or lacks the approver role."""

    kind = ErrorKind.PERMISSION_DENIED


class PolicyError(ValueError):
    """A policy file is unusable; the message names the file and the line. Raised at startup only."""


class CatalogUnavailable(GovernanceError):
    """The registry did not answer (or answered with an error other than NOT_FOUND); try again later."""

    kind = ErrorKind.UNAVAILABLE


class MonitorUnavailable(GovernanceError):
    """The monitor did not answer (or answered with an error other than NOT_FOUND / INVALID_ARGUMENT)."""

    kind = ErrorKind.UNAVAILABLE


class SignerNotReady(GovernanceError):
    """The audit signer has not yet recovered the last checkpoint it published (the broker is away): it signs
    nothing until it has, so that a restart cannot make it trust a rewritten database."""

    kind = ErrorKind.UNAVAILABLE
