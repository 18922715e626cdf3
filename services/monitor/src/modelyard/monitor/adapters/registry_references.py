"""Reference datasets from the registry: the version's `reference_dataset_digest`, streamed by `DownloadArtifact`;
and retraining snapshots uploaded to it as dataset artifacts (`UploadArtifact`, which needs the publisher role).

The registry keeps the dataset as the data scientist registered it: one column per feature, named by the feature
names of the model's inputs (`signature.inputs[i].feature_names`), plus columns that are not model inputs (the label
column, ids). The monitor names a feature by where it lives in a prediction record, so the columns are renamed
with the version's signature (`reference_columns`):

- the j-th feature name of input `x` becomes `x[j]`; of an input with a single feature name, the plain `x`;
- a column already named as the monitor names features (an input name, `x[3]`, `output:…`, `truth:…`) is kept;
- any other column (the label column, which the registry does not record per version, ids, …) is dropped.

A version that does not exist or has no reference dataset is `ReferenceNotFound`; one still being registered
(its digests not yet verified), or a registry that cannot be reached, is `ReferenceUnavailable` (asked again
later). The download is hashed as it arrives and must match the digest.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence

import grpc
import numpy as np
import numpy.typing as npt

from modelyard.contracts.events.v1 import registry_events_pb2 as registry_events
from modelyard.contracts.registry.v1 import registry_service_pb2 as registry_pb
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as registry_grpc
from modelyard.monitor.adapters.references import Format, read_columns
from modelyard.monitor.domain.errors import (
    InvalidArgument,
    ReferenceDataError,
    ReferenceNotFound,
    ReferenceUnavailable,
)
from modelyard.monitor.domain.ports import ReferenceData
from modelyard.monitor.domain.profile import OUTPUT_PREFIX, TRUTH_PREFIX
from modelyard.peers import TRANSIENT_CODES, PeerClient
from modelyard.tls import ClientTls, grpc_channel

log = logging.getLogger(__name__)

PARQUET = "application/vnd.apache.parquet"
CSV = "text/csv"
UPLOAD_CHUNK_BYTES = 1 << 20
_INDEXED = re.compile(r"^(?P<tensor>.+)\[\d+\]$")


class RegistryReferenceSource(PeerClient):
    """`ReferenceSource` over `modelyard.registry.v1.RegistryService` (GetModelVersion, DownloadArtifact).

    Synchronous: the monitor loads references in its worker thread, where a blocking call is what it wants.
    """

    def __init__(
        self, address: str, token: str | None = None, timeout_s: float = 300.0, tls: ClientTls | None = None
    ) -> None:
        super().__init__(address, token, timeout_s, tls)
        self._channel: grpc.Channel | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:
        """Pickled (for a profiling child process) without its channel and lock: the copy dials its own."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_channel", "_lock")}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state, _channel=None, _lock=threading.Lock())

    def _stub(self) -> registry_grpc.RegistryServiceStub:
        with self._lock:
            if self._channel is None:
                self._channel = grpc_channel(self.address, self.tls)
            return registry_grpc.RegistryServiceStub(self._channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None

    def load(self, model_name: str, model_version: int) -> ReferenceData:
        what = f"{model_name}/{model_version}"
        stub = self._stub()
        try:
            version = stub.GetModelVersion(
                registry_pb.GetModelVersionRequest(model_name=model_name, version=model_version),
                metadata=self._metadata,
                timeout=self.timeout_s,
            ).model_version
        except grpc.RpcError as exc:
            raise self._error(exc, what) from exc
        if version.status == registry_events.MODEL_VERSION_STATUS_PENDING_REGISTRATION:
            raise ReferenceUnavailable(f"{what} is still being registered")
        if version.status == registry_events.MODEL_VERSION_STATUS_FAILED_REGISTRATION:
            raise ReferenceNotFound(f"{what} failed registration: {version.status_message}")
        digest = version.reference_dataset_digest
        if not digest:
            raise ReferenceNotFound(f"{what} has no reference dataset in the registry at {self.address}")
        columns = self._download(stub, digest, what)
        inputs = {spec.name: list(spec.feature_names) for spec in version.signature.inputs}
        renamed = reference_columns(columns, inputs, what)
        return ReferenceData(renamed, f"registry:{digest}", feature_labels(inputs, renamed))

    def register_dataset(self, data: bytes, media_type: str) -> str:
        """`DatasetRegistry`: upload a snapshot as a dataset artifact (content-addressed: a repeat is a no-op)."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()

        def requests() -> Iterator[registry_pb.UploadArtifactRequest]:
            header = registry_pb.UploadArtifactRequest.Header(
                media_type=media_type, digest=digest, size_bytes=len(data)
            )
            yield registry_pb.UploadArtifactRequest(header=header)
            for start in range(0, len(data), UPLOAD_CHUNK_BYTES):
                yield registry_pb.UploadArtifactRequest(chunk=data[start : start + UPLOAD_CHUNK_BYTES])

        try:
            self._stub().UploadArtifact(requests(), metadata=self._metadata, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise self._error(exc, f"the upload of snapshot {digest}") from exc
        return digest

    def _download(
        self, stub: registry_grpc.RegistryServiceStub, digest: str, what: str
    ) -> dict[str, npt.NDArray[np.generic]]:
        media_type = ""
        hasher = hashlib.sha256()
        # Spooled to a temporary file, not memory: a reference dataset may be far larger than the 50k rows kept.
        with tempfile.TemporaryFile() as file:
            try:
                for response in stub.DownloadArtifact(
                    registry_pb.DownloadArtifactRequest(digest=digest), metadata=self._metadata, timeout=self.timeout_s
                ):
                    if response.HasField("artifact"):
                        media_type = response.artifact.media_type
                    hasher.update(response.chunk)
                    file.write(response.chunk)
            except grpc.RpcError as exc:
                raise self._error(exc, f"{what} reference {digest}") from exc
            if f"sha256:{hasher.hexdigest()}" != digest:
                raise ReferenceUnavailable(f"{what}: the download of {digest} does not match its digest")
            file.seek(0)
            kinds: dict[str, Format] = {PARQUET: "parquet", CSV: "csv"}
            if media_type not in kinds:
                raise ReferenceDataError(f"{what}: reference {digest} is {media_type!r}, not CSV or Parquet")
            return read_columns(file, kinds[media_type], f"{what}: cannot read reference {digest}")

    def _error(self, exc: grpc.RpcError, what: str) -> Exception:
        code: grpc.StatusCode = exc.code()
        message = f"registry {self.address}: {code.name} for {what}: {exc.details()}"
        if code == grpc.StatusCode.NOT_FOUND:
            return ReferenceNotFound(message)
        if code == grpc.StatusCode.INVALID_ARGUMENT:  # the caller's name or version is malformed: keep the meaning
            return InvalidArgument(message)
        if code in TRANSIENT_CODES:
            return ReferenceUnavailable(message)
        # Refused (unauthenticated, permission denied, data loss): log loudly, monitor operations only until fixed.
        log.error("%s", message)
        return ReferenceUnavailable(message)


def reference_columns(
    columns: Mapping[str, npt.NDArray[np.generic]], inputs: Mapping[str, Sequence[str]], what: str = "reference"
) -> dict[str, npt.NDArray[np.generic]]:
    """Rename a registered dataset's columns to the monitor's feature names (see the module docstring)."""
    renamed: dict[str, str] = {}
    for tensor, names in inputs.items():
        for index, name in enumerate(names):
            if name in columns:
                renamed[name] = _location(tensor, names, index)
    for column in columns:
        if column in renamed:
            continue
        indexed = _INDEXED.match(column)
        if (
            column.startswith((OUTPUT_PREFIX, TRUTH_PREFIX))
            or column in inputs
            or (indexed is not None and indexed["tensor"] in inputs)
        ):
            renamed[column] = column
    clashes = sorted({target for target in renamed.values() if list(renamed.values()).count(target) > 1})
    if clashes:
        raise ReferenceDataError(f"{what}: several columns map to the features {clashes}")
    dropped = sorted(set(columns) - set(renamed))
    if dropped:
        log.info("%s: reference columns %s are not model inputs: not profiled", what, dropped)
    if not renamed:
        raise ReferenceDataError(f"{what}: no reference column is a feature of the inputs {sorted(inputs)}")
    return {renamed[column]: values for column, values in columns.items() if column in renamed}


def feature_labels(inputs: Mapping[str, Sequence[str]], columns: Mapping[str, object]) -> dict[str, str]:
    """Monitor column -> registered feature name, for the inputs' features the dataset has: what the dashboard,
    the evidence and the APIs call them (`mean radius`, not `X[0]`)."""
    labels = {}
    for tensor, names in inputs.items():
        for index, name in enumerate(names):
            column = _location(tensor, names, index)
            if column in columns and name != column:
                labels[column] = name
    return labels


def _location(tensor: str, names: Sequence[str], index: int) -> str:
    """The monitor column of feature `index` of input `tensor`: `x[j]`, or the plain `x` for a one-feature input."""
    return tensor if len(names) == 1 else f"{tensor}[{index}]"
