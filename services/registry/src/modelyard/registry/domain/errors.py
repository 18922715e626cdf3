"""The registry's one exception hierarchy; each error carries its kind, which the edge maps to a gRPC status and
an HTTP code."""

from __future__ import annotations

from modelyard.errors import ErrorKind, KindedError


class RegistryError(KindedError):
    """Base of every error a registry caller can be told about; the message is safe to show them."""


class InvalidArgument(RegistryError):
    """Malformed input: a bad name, an unknown media type, bytes that are not a valid ONNX model."""

    kind = ErrorKind.INVALID_ARGUMENT


class NotFound(RegistryError):
    """An unknown model, version, alias or artifact."""

    kind = ErrorKind.NOT_FOUND


class AlreadyExists(RegistryError):
    """A registered model with that name already exists."""

    kind = ErrorKind.ALREADY_EXISTS


class FailedPrecondition(RegistryError):
    """The request is well formed but the current state forbids it (e.g. pointing an alias at an archived version)."""

    kind = ErrorKind.FAILED_PRECONDITION


class DataLoss(RegistryError):
    """Bytes do not match their digest: the upload was corrupted (nothing is stored) or a stored artifact rotted."""

    kind = ErrorKind.DATA_LOSS


class ResourceExhausted(RegistryError):
    """An upload larger than the configured limit."""

    kind = ErrorKind.RESOURCE_EXHAUSTED
