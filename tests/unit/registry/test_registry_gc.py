"""Garbage collection's rules on one registry: only blobs no version names, only old ones, only for admins, and a
re-upload of the same bytes makes a blob young again."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modelyard.auth import PermissionDenied, Principal, Role
from modelyard.registry.adapters.artifacts import LocalArtifactStore
from modelyard.registry.adapters.ingestion import OnnxArtifactInspector
from modelyard.registry.bootstrap import RegistryParts, build
from modelyard.registry.domain.model import StoredBlob
from modelyard.registry.handlers import NewVersion, RegistryHandlers
from modelyard.registry.testing import chunked, digest_of, registry_settings
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.unit

ADMIN = Principal("root", frozenset({Role.ADMIN}))
PUBLISHER = Principal("pat", frozenset({Role.PUBLISHER}))
CSV = b"a,b\n1,2\n3,4\n"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryParts]:
    built = build(registry_settings(tmp_path, gc_grace_s=3600))
    yield built
    built.engine.dispose()


def age(path: Path, seconds: float) -> None:
    then = datetime.now(UTC).timestamp() - seconds
    os.utime(path, (then, then))


async def test_only_old_unreferenced_blobs_go_and_a_reupload_makes_one_young(registry: RegistryParts) -> None:
    handlers = registry.handlers
    artifact = await handlers.upload_artifact(PUBLISHER, "text/csv", digest_of(CSV), len(CSV), chunked(CSV))
    store = LocalArtifactStore(registry.settings.resolved_artifacts_dir)
    blob = store.path_of(artifact.digest)

    young = handlers.collect_garbage(ADMIN, delete=True)
    assert (young.blobs, young.young_blobs, young.grace_s) == ((), 1, 3600)
    assert blob.exists()

    age(blob, 7200)
    dry = handlers.collect_garbage(ADMIN, delete=False)
    assert [b.digest for b in dry.blobs] == [artifact.digest] and dry.size_bytes == len(CSV) and not dry.deleted
    assert blob.exists()

    # The same bytes uploaded again (deduplicated) are about to be named by a version: spared for the grace period.
    await handlers.upload_artifact(PUBLISHER, "text/csv", digest_of(CSV), len(CSV), chunked(CSV))
    assert handlers.collect_garbage(ADMIN, delete=True).blobs == ()
    assert blob.exists()

    age(blob, 7200)
    report = handlers.collect_garbage(ADMIN, delete=True)
    assert report.deleted and [b.digest for b in report.blobs] == [artifact.digest]
    assert not blob.exists()
    with registry.store.transaction() as tx:
        assert tx.get_artifact(artifact.digest) is None  # its row went with it: a re-upload stores it again


def test_only_admins_collect_garbage(registry: RegistryParts) -> None:
    with pytest.raises(PermissionDenied, match="admin"):
        registry.handlers.collect_garbage(PUBLISHER, delete=False)


def test_stray_files_are_not_blobs(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = digest_of(b"x")
    path = store.path_of(digest)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    (path.parent / "notes.txt").write_bytes(b"not a blob")
    (path.parent / ("0" * 64)).write_bytes(b"in the wrong directory")
    assert [(b.digest, b.size_bytes) for b in store.blobs()] == [(digest, 1)]
    assert store.stored_blob(digest_of(b"y")) is None
    before = datetime.now(UTC) - timedelta(seconds=5)
    blob = store.stored_blob(digest)
    assert blob is not None and blob.modified_at > before


class OvertakenScan:
    """The registry's artifact store, whose scan a registration overtakes (as a concurrent caller would)."""

    def __init__(self, inner: LocalArtifactStore, registration: Callable[[], object]) -> None:
        self._inner = inner
        self._registration = registration

    def blobs(self) -> Iterator[StoredBlob]:
        listed = list(self._inner.blobs())
        self._registration()
        return iter(listed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_a_blob_named_by_a_version_registered_after_the_scan_is_kept(
    registry: RegistryParts, onnx_models: dict[str, TrainedModel]
) -> None:
    model = onnx_models["iris"]
    uploads = registry.handlers
    onnx = await uploads.upload_artifact(
        PUBLISHER, "application/onnx", model.digest, len(model.onnx), chunked(model.onnx)
    )
    store = LocalArtifactStore(registry.settings.resolved_artifacts_dir)
    age(store.path_of(onnx.digest), 7200)
    uploads.create_model(PUBLISHER, "late")

    def register() -> None:
        uploads.create_version(PUBLISHER, NewVersion(model_name="late", artifact_digest=onnx.digest))

    handlers = RegistryHandlers(
        registry.store, OvertakenScan(store, register), OnnxArtifactInspector(store.staging_dir), uploads.policy
    )
    report = handlers.collect_garbage(ADMIN, delete=True)
    assert report.blobs == () and store.exists(onnx.digest)
