"""Staged uploads left behind by a killed registry are removed at the next start; uploads in progress are not."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from modelyard.registry.adapters.artifacts import LocalArtifactStore
from modelyard.registry.bootstrap import build
from modelyard.registry.testing import registry_settings

pytestmark = pytest.mark.unit


def test_only_abandoned_uploads_are_removed(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    abandoned, live = store.staging_dir / "upload-abandoned", store.staging_dir / "upload-live"
    abandoned.write_bytes(b"x" * 1000)
    live.write_bytes(b"y" * 10)
    two_hours_ago = time.time() - 7200
    os.utime(abandoned, (two_hours_ago, two_hours_ago))
    (store.staging_dir / "not-ours").write_bytes(b"z")  # only the store's own staging files are its business
    assert store.clean_staging(idle_s=3600) == (1, 1000)
    assert sorted(p.name for p in store.staging_dir.iterdir()) == ["not-ours", "upload-live"]


def test_the_registry_cleans_its_staging_at_start(tmp_path: Path) -> None:
    settings = registry_settings(tmp_path)
    staging = settings.resolved_artifacts_dir / "staging"
    staging.mkdir(parents=True)
    leftover = staging / "upload-killed"
    leftover.write_bytes(b"half an upload")
    os.utime(leftover, (0, 0))
    registry = build(settings)
    try:
        assert not leftover.exists()
    finally:
        registry.engine.dispose()
