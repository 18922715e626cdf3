"""The registry's one exception hierarchy; the edges map each class to a gRPC status and an HTTP code once."""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every error a registry caller can be told about; the message is safe to show them."""


class InvalidArgument(RegistryError):
    """Malformed input: a bad name, an unknown media type, bytes that are not a valid ONNX model."""


class NotFound(RegistryError):
    """An unknown model, version, alias or artifact."""


class AlreadyExists(RegistryError):
    """A registered model with that name already exists."""


class FailedPrecondition(RegistryError):
    """The request is well formed but the current state forbids it (e.g. pointing an alias at an archived version)."""


class DataLoss(RegistryError):
    """Bytes do not match their digest: the upload was corrupted (nothing is stored) or a stored artifact rotted."""


class ResourceExhausted(RegistryError):
    """An upload larger than the configured limit."""
