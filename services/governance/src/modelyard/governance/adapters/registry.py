"""`ModelCatalog` over the registry's gRPC API (blocking: the use cases run in worker threads)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import grpc

from modelyard.contracts.registry.v1 import registry_service_pb2 as pb
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as pb_grpc
from modelyard.governance.domain.errors import (
    AlreadyExists,
    CatalogUnavailable,
    FailedPrecondition,
    GovernanceError,
    InvalidArgument,
    NotFound,
)
from modelyard.governance.domain.model import Dim, Signature, TensorSpec, VersionFacts, VersionRef
from modelyard.peers import bearer
from modelyard.tls import ClientTls, grpc_channel

T = TypeVar("T")
TIMEOUT_S = 10.0
# The registry's answers about the caller's request keep their meaning (asking again would not help); anything
# else, including refusing governance's own token, is the registry being unavailable to governance.
_CLIENT_ERRORS: dict[grpc.StatusCode, type[GovernanceError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
}


class RegistryCatalog:
    def __init__(self, address: str, token: str | None = None, tls: ClientTls | None = None) -> None:
        self._channel = grpc_channel(address, tls)
        self._stub = pb_grpc.RegistryServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata = bearer(token)

    def close(self) -> None:
        self._channel.close()

    def get_version(self, model_name: str, version: int) -> VersionFacts:
        found = self._call(
            self._stub.GetModelVersion, pb.GetModelVersionRequest(model_name=model_name, version=version)
        )
        model = self._call(self._stub.GetRegisteredModel, pb.GetRegisteredModelRequest(name=model_name))
        return facts_of(found.model_version, model.registered_model)

    def alias_version(self, model_name: str, alias: str) -> VersionFacts | None:
        try:
            found = self._call(self._stub.ResolveAlias, pb.ResolveAliasRequest(model_name=model_name, alias=alias))
        except NotFound:
            return None
        return facts_of(found.model_version, None)

    def download(self, digest: str) -> bytes:
        def read(request: pb.DownloadArtifactRequest, **kwargs: object) -> bytes:
            return b"".join(part.chunk for part in self._stub.DownloadArtifact(request, **kwargs))

        return self._call(read, pb.DownloadArtifactRequest(digest=digest))

    def set_alias(self, model_name: str, alias: str, version: int, reason: str) -> None:
        request = pb.SetAliasRequest(model_name=model_name, alias=alias, version=version, reason=reason)
        self._call(self._stub.SetAlias, request)

    def _call(self, method: Callable[..., T], request: object) -> T:
        try:
            return method(request, metadata=self._metadata, timeout=TIMEOUT_S)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()  # the error of a failed call is also its Call object
            meaning = _CLIENT_ERRORS.get(code)
            if meaning is not None:
                raise meaning(f"registry: {details}") from None
            raise CatalogUnavailable(f"registry: {code.name}: {details}") from None


def facts_of(version: pb.ModelVersion, model: pb.RegisteredModel | None) -> VersionFacts:
    lineage = version.lineage
    return VersionFacts(
        ref=VersionRef(version.model_name, version.version, version.digest),
        created_by=version.created_by,
        created_at=version.created_at.ToDatetime().astimezone(),
        signature=Signature(
            inputs=tuple(_tensor(t) for t in version.signature.inputs),
            outputs=tuple(_tensor(t) for t in version.signature.outputs),
        ),
        description=model.description if model else "",
        owner=model.owner if model else "",
        metrics=dict(lineage.metrics),
        training_datasets=tuple(lineage.training_datasets),
        evaluation_datasets=tuple(lineage.evaluation_datasets) or _reference(version),
        code_revision=lineage.code_revision,
        parameters=dict(lineage.parameters),
        tags={**(model.tags if model else {}), **version.tags},
    )


def _reference(version: pb.ModelVersion) -> tuple[str, ...]:
    # Without a declared evaluation dataset, the reference dataset registered with the version is the data the
    # model is known to fit; evaluating on it is weaker evidence, and the card shows which one was used.
    return (version.reference_dataset_digest,) if version.reference_dataset_digest else ()


def _tensor(spec: pb.TensorSpec) -> TensorSpec:
    shape: tuple[Dim, ...] | None = None
    if spec.HasField("shape"):
        shape = tuple(_dim(d) for d in spec.shape.dims)
    return TensorSpec(spec.name, spec.element_type, shape, tuple(spec.feature_names))


def _dim(dim: pb.TensorDim) -> Dim:
    which = dim.WhichOneof("dim")
    return dim.value if which == "value" else dim.param if which == "param" else None
