"""Safe ingestion of untrusted uploads: ONNX models (single files or tar bundles with external data) and
reference datasets (CSV, Parquet).

The checks, in order, each refusing with InvalidArgument (or ResourceExhausted for size): the bytes parse as an
ONNX ModelProto; every external-data reference resolves to a regular, singly-linked file inside the bundle (no
absolute paths, `..`, symlinks or hard links: onnxruntime follows hard links, so a link could make it read any
file the server can); onnx's checker passes; onnxruntime builds a session. Bundles are unpacked into a private
temporary directory that is removed afterwards whatever happens.
"""

from __future__ import annotations

import itertools
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

import onnx
import onnxruntime
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from google.protobuf.message import DecodeError

from modelyard.registry.domain.errors import InvalidArgument, ResourceExhausted
from modelyard.registry.domain.model import DatasetSchema, MediaType, Signature, TensorSpec

_CSV_BLOCK_BYTES = 256 * 1024


class OnnxArtifactInspector:
    def __init__(self, scratch_dir: Path) -> None:
        self._scratch = scratch_dir

    def inspect_model(self, path: Path, media_type: MediaType, max_bytes: int) -> Signature:
        if media_type is MediaType.ONNX:
            return _inspect_onnx(path, bundle_dir=None)
        if media_type is MediaType.ONNX_BUNDLE:
            with tempfile.TemporaryDirectory(dir=self._scratch, prefix="bundle-") as raw:
                bundle = Path(raw)
                _unpack_bundle(path, bundle, max_bytes)
                return _inspect_onnx(_bundle_model(bundle), bundle_dir=bundle)
        raise InvalidArgument(f"{media_type.value} is not a model media type")

    def inspect_dataset(self, path: Path, media_type: MediaType) -> DatasetSchema:
        try:
            if media_type is MediaType.CSV:
                # Small blocks, one thread and the system allocator (mimalloc keeps what it freed): streaming a
                # dataset of any size stays within a few tens of MB of server memory.
                read = pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES, use_threads=False)
                pool = pa.system_memory_pool()
                columns = pa_csv.open_csv(path, read_options=read, memory_pool=pool).schema.names
                # Every row is parsed (a ragged or binary file fails) but only one column converted: inferring
                # and converting every column makes ingestion several times slower, and column types are not
                # part of the dataset's record.
                convert = pa_csv.ConvertOptions(include_columns=columns[:1], column_types={columns[0]: pa.string()})
                batches = pa_csv.open_csv(path, read, convert_options=convert, memory_pool=pool)
                return DatasetSchema(columns=tuple(columns), rows=sum(batch.num_rows for batch in batches))
            if media_type is MediaType.PARQUET:
                parquet = pq.ParquetFile(path)
                return DatasetSchema(columns=tuple(parquet.schema_arrow.names), rows=parquet.metadata.num_rows)
        except (pa.ArrowException, OSError) as exc:
            raise InvalidArgument(f"not a valid {media_type.value} file: {exc}") from exc
        raise InvalidArgument(f"{media_type.value} is not a dataset media type")


def _inspect_onnx(path: Path, bundle_dir: Path | None) -> Signature:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidArgument(f"not an ONNX model: {exc}") from exc
    if not model.HasField("graph") or model.ir_version <= 0:
        raise InvalidArgument("not an ONNX model: no graph or IR version")
    _check_external_data(model, bundle_dir)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError, ValueError) as exc:
        raise InvalidArgument(f"ONNX checker refused the model: {exc}") from exc
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors (Fail, InvalidGraph, ...)
        raise InvalidArgument(f"onnxruntime cannot load the model: {exc}") from exc
    return _signature(model)


def _signature(model: onnx.ModelProto) -> Signature:
    initializers = {init.name for init in model.graph.initializer}
    return Signature(
        inputs=tuple(_tensor_spec(v) for v in model.graph.input if v.name not in initializers),
        outputs=tuple(_tensor_spec(v) for v in model.graph.output),
        opsets={opset.domain or "ai.onnx": opset.version for opset in model.opset_import},
        ir_version=model.ir_version,
        producer_name=model.producer_name,
        producer_version=model.producer_version,
    )


def _tensor_spec(value: onnx.ValueInfoProto) -> TensorSpec:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return TensorSpec(name=value.name, element_type=(kind or "unknown").upper(), shape=None)
    tensor = value.type.tensor_type
    shape: tuple[int | str | None, ...] | None = None
    if tensor.HasField("shape"):
        shape = tuple(_dim(d) for d in tensor.shape.dim)
    return TensorSpec(name=value.name, element_type=onnx.TensorProto.DataType.Name(tensor.elem_type), shape=shape)


def _dim(dim: onnx.TensorShapeProto.Dimension) -> int | str | None:
    if dim.HasField("dim_value"):
        return int(dim.dim_value)
    if dim.HasField("dim_param"):
        return str(dim.dim_param)
    return None


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    yield from _node_tensors(graph.node)


def _node_tensors(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.TensorProto]:
    for node in nodes:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _graph_tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _graph_tensors(subgraph)


def _check_external_data(model: onnx.ModelProto, bundle_dir: Path | None) -> None:
    functions = (tensor for function in model.functions for tensor in _node_tensors(function.node))
    for tensor in itertools.chain(_graph_tensors(model.graph), functions):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        if bundle_dir is None:
            raise InvalidArgument(
                f"tensor {tensor.name!r} keeps its data in external file {location!r}: upload a bundle "
                f"({MediaType.ONNX_BUNDLE.value}) that contains it"
            )
        _check_external_file(tensor.name, location, info, bundle_dir)


def _check_external_file(tensor: str, location: str, info: dict[str, str], bundle_dir: Path) -> None:
    relative = PurePosixPath(location)
    if not location or relative.is_absolute() or ".." in relative.parts or "\\" in location:
        raise InvalidArgument(f"tensor {tensor!r}: external data location {location!r} is outside the bundle")
    path = bundle_dir / relative
    try:
        # lstat: a symlink is refused as such, never followed.
        st = path.lstat()
    except FileNotFoundError:
        raise InvalidArgument(f"tensor {tensor!r}: external data file {location!r} is not in the bundle") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidArgument(f"tensor {tensor!r}: external data {location!r} is not a regular file")
    if st.st_nlink != 1:
        raise InvalidArgument(f"tensor {tensor!r}: external data {location!r} is a hard link")
    if not path.resolve().is_relative_to(bundle_dir.resolve()):
        raise InvalidArgument(f"tensor {tensor!r}: external data location {location!r} is outside the bundle")
    try:
        offset, length = int(info.get("offset", "0")), int(info.get("length", "0"))
    except ValueError:
        raise InvalidArgument(f"tensor {tensor!r}: bad external data offset or length") from None
    if offset < 0 or length < 0 or offset + length > st.st_size:
        raise InvalidArgument(f"tensor {tensor!r}: external data range is beyond the end of {location!r}")


def _unpack_bundle(archive: Path, dest: Path, max_bytes: int) -> None:
    """Unpack regular files and directories only; anything that could point elsewhere is refused."""
    total = 0
    try:
        with tarfile.open(archive, mode="r:") as tar:
            for member in tar:
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise InvalidArgument(f"bundle member {member.name!r} points outside the bundle")
                if member.issym() or member.islnk():
                    raise InvalidArgument(f"bundle member {member.name!r} is a link: links are refused")
                if not (member.isfile() or member.isdir()):
                    raise InvalidArgument(f"bundle member {member.name!r} is not a regular file or directory")
                total += member.size
                if total > max_bytes:  # guards against sparse-file bombs larger than the upload itself
                    raise ResourceExhausted(f"bundle unpacks to more than the limit of {max_bytes} bytes")
                tar.extract(member, dest, filter="data")
    except tarfile.TarError as exc:
        raise InvalidArgument(f"not a valid tar bundle: {exc}") from exc


def _bundle_model(bundle: Path) -> Path:
    models = sorted(p for p in bundle.iterdir() if p.suffix == ".onnx" and p.is_file())
    if len(models) != 1:
        raise InvalidArgument(f"a bundle holds exactly one .onnx file at its top level, found {len(models)}")
    return models[0]
