"""Safe ingestion: every refused upload gets a precise error and leaves nothing on disk or in the database."""

from __future__ import annotations

import asyncio
import io
import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import sqlalchemy as sa
from onnx import TensorProto, helper, numpy_helper

from modelyard.registry.adapters.sql import schema
from modelyard.registry.bootstrap import RegistryParts
from modelyard.registry.domain.errors import DataLoss, InvalidArgument, RegistryError, ResourceExhausted
from modelyard.registry.domain.model import MediaType
from modelyard.registry.testing import ALICE, chunked, digest_of
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration


def _add_model(weights: int = 1024) -> onnx.ModelProto:
    """Y = X + W with a float initializer W large enough to be saved as external data."""
    w = numpy_helper.from_array(np.arange(weights, dtype=np.float32), name="W")
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        "add",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", weights])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", weights])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _external(tmp: Path, location: str = "weights.bin") -> tuple[bytes, bytes]:
    """(model bytes that reference `location`, the external data bytes)."""
    model = _add_model()
    onnx.save_model(model, tmp / "m.onnx", save_as_external_data=True, location="weights.bin", size_threshold=0)
    stored = onnx.load(tmp / "m.onnx", load_external_data=False)
    for entry in stored.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    return stored.SerializeToString(), (tmp / "weights.bin").read_bytes()


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _upload(registry: RegistryParts, data: bytes, media: MediaType, *, digest: str = "", size: int = 0) -> None:
    handlers = registry.handlers
    asyncio.run(handlers.upload_artifact(ALICE, media.value, digest or digest_of(data), size, chunked(data, 1000)))


def _nothing_left(registry: RegistryParts, data: bytes) -> None:
    staging = registry.settings.resolved_artifacts_dir / "staging"
    assert list(staging.iterdir()) == []
    hexdigest = digest_of(data).removeprefix("sha256:")
    assert not (registry.settings.resolved_artifacts_dir / "sha256" / hexdigest[:2] / hexdigest).exists()
    with registry.engine.connect() as connection:
        query = sa.select(sa.func.count()).where(schema.artifacts.c.digest == digest_of(data))
        assert connection.scalar(query) == 0


def _refused(registry: RegistryParts, data: bytes, media: MediaType, error: type[RegistryError], match: str) -> None:
    with pytest.raises(error, match=match):
        _upload(registry, data, media)
    _nothing_left(registry, data)


def test_non_onnx_bytes_are_invalid(registry: RegistryParts) -> None:
    _refused(registry, b"\x00\x01 definitely not protobuf \xff" * 10, MediaType.ONNX, InvalidArgument, "not an ONNX")
    _refused(registry, b"", MediaType.ONNX, InvalidArgument, "not an ONNX")


def test_checker_failure_is_invalid(registry: RegistryParts) -> None:
    model = _add_model()
    model.graph.node[0].input[0] = "undefined"
    _refused(registry, model.SerializeToString(), MediaType.ONNX, InvalidArgument, "checker")


def test_onnxruntime_load_failure_is_invalid(registry: RegistryParts) -> None:
    model = _add_model()
    model.graph.node[0].op_type = "NoSuchOperator"
    model.graph.node[0].domain = "com.example"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    _refused(registry, model.SerializeToString(), MediaType.ONNX, InvalidArgument, "onnxruntime")


def test_external_data_outside_a_bundle_is_refused(registry: RegistryParts, tmp_path: Path) -> None:
    model, _ = _external(tmp_path)
    _refused(registry, model, MediaType.ONNX, InvalidArgument, "upload a bundle")


def test_bundle_with_external_data_is_accepted(registry: RegistryParts, tmp_path: Path) -> None:
    model, weights = _external(tmp_path)
    bundle = _tar(_file("model.onnx", model), _file("weights.bin", weights))
    _upload(registry, bundle, MediaType.ONNX_BUNDLE)


@pytest.mark.parametrize("location", ["../weights.bin", "/etc/passwd", "sub/../../weights.bin"])
def test_external_data_escaping_the_bundle_is_refused(registry: RegistryParts, tmp_path: Path, location: str) -> None:
    model, weights = _external(tmp_path, location)
    bundle = _tar(_file("model.onnx", model), _file("weights.bin", weights))
    _refused(registry, bundle, MediaType.ONNX_BUNDLE, InvalidArgument, "outside the bundle")


def test_missing_external_data_is_refused(registry: RegistryParts, tmp_path: Path) -> None:
    model, _ = _external(tmp_path)
    _refused(registry, _tar(_file("model.onnx", model)), MediaType.ONNX_BUNDLE, InvalidArgument, "not in the bundle")


@pytest.mark.parametrize(("kind", "target"), [(tarfile.SYMTYPE, "/etc/passwd"), (tarfile.LNKTYPE, "model.onnx")])
def test_links_in_bundles_are_refused(registry: RegistryParts, tmp_path: Path, kind: bytes, target: str) -> None:
    model, _ = _external(tmp_path)
    bundle = _tar(_file("model.onnx", model), _link("weights.bin", target, kind))
    _refused(registry, bundle, MediaType.ONNX_BUNDLE, InvalidArgument, "is a link")


def test_bundle_members_outside_are_refused(registry: RegistryParts, tmp_path: Path) -> None:
    model, weights = _external(tmp_path)
    bundle = _tar(_file("model.onnx", model), _file("../weights.bin", weights))
    _refused(registry, bundle, MediaType.ONNX_BUNDLE, InvalidArgument, "outside the bundle")


def test_oversized_upload_is_resource_exhausted(registry: RegistryParts) -> None:
    too_big = b"\0" * (registry.settings.max_artifact_bytes + 1)
    _refused(registry, too_big, MediaType.ONNX, ResourceExhausted, "larger than the limit")
    with pytest.raises(ResourceExhausted):  # a declared size over the limit is refused before any byte
        _upload(registry, b"small", MediaType.ONNX, size=registry.settings.max_artifact_bytes + 1)


def test_digest_mismatch_is_data_loss(registry: RegistryParts, onnx_models: dict[str, TrainedModel]) -> None:
    data = onnx_models["iris"].onnx
    with pytest.raises(DataLoss, match="not the declared"):
        _upload(registry, data, MediaType.ONNX, digest=digest_of(b"other bytes"))
    _nothing_left(registry, data)


def test_upload_cut_off_half_way_leaves_nothing(registry: RegistryParts, onnx_models: dict[str, TrainedModel]) -> None:
    # A digest no other test stores in the session's registry (they share it): an ONNX model with its own tail.
    data = onnx_models["breast-cancer"].onnx + uuid.uuid4().bytes

    async def cut_off() -> AsyncIterator[bytes]:
        yield data[:500]
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        asyncio.run(registry.handlers.upload_artifact(ALICE, MediaType.ONNX.value, digest_of(data), 0, cut_off()))
    _nothing_left(registry, data)


def test_datasets_are_inspected(registry: RegistryParts, onnx_models: dict[str, TrainedModel]) -> None:
    model = onnx_models["iris"]
    handlers = registry.handlers
    csv = model.reference_csv
    artifact = asyncio.run(handlers.upload_artifact(ALICE, "text/csv", digest_of(csv), len(csv), chunked(csv)))
    assert artifact.dataset is not None and artifact.dataset.rows == 150
    assert artifact.dataset.columns[-1] == "target"
    _refused(registry, b"PAR1 this is not parquet", MediaType.PARQUET, InvalidArgument, "not a valid")


def test_unknown_media_type_is_invalid(registry: RegistryParts) -> None:
    with pytest.raises(InvalidArgument, match="unknown media type"):
        asyncio.run(registry.handlers.upload_artifact(ALICE, "image/png", digest_of(b"x"), 1, chunked(b"x")))
