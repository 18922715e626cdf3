"""`modelyard registry gc` against a registry serving gRPC on SQLite and local artifacts: a dry run lists the
orphans and deletes nothing; --delete deletes only them; what versions name survives and still downloads."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from modelyard.cli.app import app
from modelyard.contracts.registry.v1 import registry_service_pb2 as pb
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as pb_grpc
from modelyard.registry.adapters.artifacts import LocalArtifactStore
from modelyard.registry.testing import RunningService, digest_of, registry_settings
from modelyard.testing.models import LABEL_COLUMN, TrainedModel

pytestmark = pytest.mark.integration


def run(address: str, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--registry", address], env={"COLUMNS": "60"})  # narrow on purpose
    assert result.exit_code == 0, result.output
    return result.output


def upload_only(address: str, data: bytes) -> str:
    """Upload bytes that no version will name (a registration that never came)."""
    header = pb.UploadArtifactRequest.Header(media_type="text/csv", digest=digest_of(data), size_bytes=len(data))
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        requests = iter([pb.UploadArtifactRequest(header=header), pb.UploadArtifactRequest(chunk=data)])
        response: pb.UploadArtifactResponse = stub.UploadArtifact(requests)
    return response.artifact.digest


def test_gc_lists_then_deletes_only_unreferenced_blobs(
    tmp_path: Path, kafka_bootstrap: str, onnx_models: dict[str, TrainedModel]
) -> None:
    model = onnx_models["iris"]
    settings = registry_settings(tmp_path / "registry", kafka_bootstrap=kafka_bootstrap, gc_grace_s=0)
    blobs = LocalArtifactStore(settings.resolved_artifacts_dir)
    reference = tmp_path / "iris.csv"
    reference.write_bytes(model.reference_csv)
    with RunningService(settings) as service:
        address = service.grpc_address
        onnx_file = str(model.write(tmp_path))
        run(address, "models", "register", "gc-flowers", onnx_file, "--reference-dataset", str(reference),
            "--label-column", LABEL_COLUMN)  # fmt: skip
        orphan_csv = b"x,y\n1,2\n"
        orphan = upload_only(address, orphan_csv)
        # Bytes stored by a registry killed before it wrote their row.
        rowless = b"left by a crash"
        blobs.path_of(digest_of(rowless)).parent.mkdir(exist_ok=True)
        blobs.path_of(digest_of(rowless)).write_bytes(rowless)
        garbage = {orphan: len(orphan_csv), digest_of(rowless): len(rowless)}

        dry = run(address, "registry", "gc")
        assert all(digest in dry for digest in garbage), dry
        assert f"would delete (dry run; --delete deletes) 2 unreferenced blobs, {sum(garbage.values())} bytes" in dry
        assert all(blobs.exists(digest) for digest in garbage)

        deleted = run(address, "registry", "gc", "--delete")
        assert f"deleted 2 unreferenced blobs, {sum(garbage.values())} bytes" in deleted
        assert {b.digest for b in blobs.blobs()} == {model.digest, model.reference_digest}
        assert "deleted 0 unreferenced blobs, 0 bytes" in run(address, "registry", "gc", "--delete")

        out = tmp_path / "out.onnx"
        run(address, "models", "download", "gc-flowers", "--version", "1", "--output", str(out))
        assert out.read_bytes() == model.onnx
        # The orphan's row went with its bytes: uploading them again stores them again.
        assert upload_only(address, orphan_csv) == orphan and blobs.exists(orphan)
