"""The registry's artifacts on S3: moto's standalone S3 server (a process of its own), real uploads through the use
cases, multipart with per-part checksums, streamed uploads of run files, digest checks on read, an interrupted
upload leaving nothing visible, and the cleanup of what a killed registry left."""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.registry.adapters.s3_artifacts import S3ArtifactStore, S3Location, s3_client
from modelyard.registry.bootstrap import RegistryParts, build
from modelyard.registry.domain.errors import DataLoss, ResourceExhausted
from modelyard.registry.domain.model import VersionStatus
from modelyard.registry.handlers import NewVersion
from modelyard.registry.testing import ALICE, S3_KEYS, chunked, digest_of, registry_settings
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration
FIVE_MIB = 5 * 1024 * 1024  # S3's smallest part but the last


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> str:
    name = f"artifacts-{uuid.uuid4().hex[:8]}"
    s3_client(s3_endpoint, "us-east-1", "testing", "testing").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str, bucket: str) -> Iterator[RegistryParts]:
    settings = registry_settings(
        tmp_path_factory.mktemp("s3"), artifacts_url=f"s3://{bucket}/models", s3_endpoint_url=s3_endpoint, **S3_KEYS
    )
    parts = build(settings)
    yield parts
    parts.engine.dispose()


def store_of(registry: RegistryParts) -> S3ArtifactStore:
    store = registry.handlers._artifacts
    assert isinstance(store, S3ArtifactStore)
    return store


def test_upload_register_and_read_back_from_s3(
    registry: RegistryParts, bucket: str, onnx_models: dict[str, TrainedModel]
) -> None:
    h, model = registry.handlers, onnx_models["iris"]
    asyncio.run(h.upload_artifact(ALICE, "application/onnx", model.digest, len(model.onnx), chunked(model.onnx)))
    store = store_of(registry)
    s3 = store._s3
    head = s3.head_object(Bucket=bucket, Key=store.key_of(model.digest))
    assert head["Metadata"]["sha256"] == model.digest.removeprefix("sha256:")
    assert store.key_of(model.digest).startswith("models/sha256/")
    assert not list(store.staging_dir.iterdir())  # the staged copy is gone once the object is stored
    name = f"iris-{uuid.uuid4().hex[:6]}"
    h.create_model(ALICE, name)
    version = h.create_version(ALICE, NewVersion(name, model.digest))
    h.check_version(name, version.version)  # re-reads the object, verifying its digest
    assert h.get_version(ALICE, name, version.version).status is VersionStatus.READY
    _, chunks = h.open_artifact(ALICE, model.digest)
    assert b"".join(chunks) == model.onnx
    assert model.digest in {blob.digest for blob in store.blobs()}


def test_a_multipart_upload_of_several_parts_round_trips(registry: RegistryParts) -> None:
    data = bytes(range(256)) * (FIVE_MIB // 256 * 2 + 1000)  # three parts
    digest = digest_of(data)
    store = store_of(registry)
    store.upload(store.key_of(digest), io.BytesIO(data), digest)
    assert store.size(digest) == len(data)
    assert b"".join(store.read(digest, 1 << 20)) == data


class Interrupted(io.RawIOBase):
    """Gives `limit` bytes, then fails as a dropped connection would."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise ConnectionResetError("client went away")
        n = min(size, self.left)
        self.left -= n
        return b"x" * n


def test_an_interrupted_multipart_upload_leaves_nothing_visible(registry: RegistryParts, bucket: str) -> None:
    store = store_of(registry)
    digest = "sha256:" + "ab" * 32
    with pytest.raises(ConnectionResetError):
        store.upload(store.key_of(digest), Interrupted(FIVE_MIB + 1024), digest)  # one part sent, then cut off
    assert not store.exists(digest) and store.stored_blob(digest) is None
    pending = store._s3.list_multipart_uploads(Bucket=bucket, Prefix=store.key_of(digest))
    assert pending.get("Uploads", []) == []  # aborted: no parts left behind either


def test_corrupted_or_misplaced_objects_are_data_loss(registry: RegistryParts, bucket: str) -> None:
    store, s3 = store_of(registry), store_of(registry)._s3
    data = b"some bytes"
    digest = digest_of(data)
    s3.put_object(Bucket=bucket, Key=store.key_of(digest), Body=b"other bytes", Metadata={"sha256": digest[7:]})
    with pytest.raises(DataLoss, match="does not match its digest"):
        b"".join(store.read(digest, 4))
    other = digest_of(b"misplaced")
    s3.put_object(Bucket=bucket, Key=store.key_of(other), Body=data, Metadata={"sha256": digest[7:]})
    with pytest.raises(DataLoss, match="misplaced"):
        store.read(other, 4)


def test_location_parsing(tmp_path: Path) -> None:
    assert S3Location.parse("s3://bucket/a/b/") == S3Location("bucket", "a/b")
    assert S3Location.parse("s3://bucket") == S3Location("bucket", "")
    with pytest.raises(ValueError, match="not an s3"):
        S3Location.parse("gs://bucket")


def test_run_files_on_s3_register_twice(registry: RegistryParts, onnx_models: dict[str, TrainedModel]) -> None:
    """A run's file read back from S3 (re-hashed) for registration, twice: the second finds the bytes stored."""
    h, model = registry.handlers, onnx_models["iris"]
    run = h.create_run(ALICE, h.create_experiment(ALICE, f"s3-{uuid.uuid4().hex[:6]}"))
    asyncio.run(h.upload_file(ALICE, run.run_id, "model/model.onnx", chunked(model.onnx, 100)))
    for _ in range(2):
        name = f"iris-{uuid.uuid4().hex[:6]}"
        h.create_model(ALICE, name)
        version = h.register_from_source(ALICE, name, f"runs:/{run.run_id}/model")
        h.check_version(name, version.version)
        assert h.get_version(ALICE, name, version.version).status is VersionStatus.READY


def _staging_left(store: S3ArtifactStore, bucket: str) -> tuple[list[str], list[str]]:
    prefix = store._staging
    objects = store._s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    uploads = store._s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    return [o["Key"] for o in objects], [u["Key"] for u in uploads]


def test_streamed_uploads_are_named_by_their_digest_and_an_interrupted_one_leaves_nothing(
    registry: RegistryParts, bucket: str
) -> None:
    """A run's files go to S3 as they arrive (parts sent while the rest is received), no local copy."""
    store = store_of(registry)
    data = os.urandom(2 * FIVE_MIB + 1000)  # three parts
    for payload in (data, data, b"small: one part, put under its digest directly"):
        with store.receive(len(payload)) as incoming:
            for start in range(0, len(payload), 64 * 1024):
                incoming.write(payload[start : start + 64 * 1024])
            assert incoming.finish() == digest_of(payload)
            store.commit(incoming)  # the second time: deduplicated, the staging upload dropped
        assert b"".join(store.read(digest_of(payload), 1 << 20)) == payload
    assert not list(store.staging_dir.iterdir()) and _staging_left(store, bucket) == ([], [])

    with pytest.raises(ConnectionResetError), store.receive(len(data)) as incoming:
        incoming.write(data[: FIVE_MIB + 10])  # a part is sent, then the client goes away
        raise ConnectionResetError("client went away")
    with pytest.raises(ResourceExhausted), store.receive(FIVE_MIB) as incoming:
        incoming.write(data[: FIVE_MIB + 10])
    assert _staging_left(store, bucket) == ([], [])  # aborted: no object, no parts left behind


def test_staging_cleanup_removes_abandoned_uploads(registry: RegistryParts, bucket: str) -> None:
    """What a killed registry leaves on S3 (an open multipart upload, a staging object) is removed at start."""
    store = store_of(registry)
    s3 = store._s3
    s3.create_multipart_upload(Bucket=bucket, Key=f"{store._staging}abandoned")
    s3.put_object(Bucket=bucket, Key=f"{store._staging}left", Body=b"x" * 10)
    assert store.clean_staging(0) == (2, 10)
    assert _staging_left(store, bucket) == ([], [])
