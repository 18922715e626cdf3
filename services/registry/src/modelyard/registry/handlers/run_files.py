"""The registry's use cases, a run's files: upload and download (content-addressed blobs, verified both ways),
listing, and registering a model version from a run's ONNX file with the run as its lineage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterator, Mapping
from dataclasses import dataclass

from modelyard.auth import Principal
from modelyard.registry.domain.errors import InvalidArgument, NotFound
from modelyard.registry.domain.model import Lineage, MediaType, ModelVersion
from modelyard.registry.domain.tracking import (
    Run,
    RunArtifact,
    run_id_in_source,
    validate_artifact_path,
    validate_run_id,
)
from modelyard.registry.handlers.artifacts import ArtifactUseCases
from modelyard.registry.handlers.base import PUBLISH, READ
from modelyard.registry.handlers.tracking import existing_run
from modelyard.registry.handlers.versions import NewVersion, VersionUseCases

EVALUATION_CONTEXTS = frozenset({"eval", "evaluation", "test", "validation"})


@dataclass(frozen=True)
class FileEntry:
    """One entry of a listing: a file (with its size) or a directory."""

    path: str
    is_dir: bool
    size_bytes: int = 0


def run_lineage(run: Run, path: str) -> Lineage:
    """What a model registered from `run` records as its lineage: the run's data, code, parameters and results."""
    training = tuple(i.digest for i in run.inputs if i.context.lower() not in EVALUATION_CONTEXTS)
    evaluation = tuple(i.digest for i in run.inputs if i.context.lower() in EVALUATION_CONTEXTS)
    return Lineage(
        training_datasets=training,
        evaluation_datasets=evaluation,
        code_revision=run.git_commit,
        parameters=dict(run.params),
        metrics={key: metric.value for key, metric in run.metrics.items()},
        environment={"source": run.source} if run.source else {},
        run_id=run.run_id,
        source=f"runs:/{run.run_id}/{path}",
    )


class RunFileUseCases(ArtifactUseCases, VersionUseCases):
    async def upload_run_file(
        self, principal: Principal, run_id: str, path: str, chunks: AsyncIterable[bytes]
    ) -> RunArtifact:
        """Store a file of a run: streamed to a staged blob (hashed as it goes), then named by the run's path.
        Nothing is named if the upload fails half way: the staged bytes are removed on the way out."""
        principal.require("upload run files", PUBLISH)
        validate_run_id(run_id)
        validate_artifact_path(path)
        await asyncio.to_thread(self.get_run_for_files, run_id)
        with self._artifacts.stage(self.policy.max_artifact_bytes) as staged:
            async for chunk in chunks:
                await asyncio.to_thread(staged.write, chunk)
            digest = await asyncio.to_thread(staged.finish)
            await asyncio.to_thread(self._artifacts.commit, staged)
            artifact = RunArtifact(path, digest, staged.size_bytes)
        with self._store.transaction(write=True) as tx:
            existing_run(tx, run_id)
            tx.put_run_artifact(run_id, artifact)
        return artifact

    def get_run_for_files(self, run_id: str) -> Run:
        with self._store.transaction() as tx:
            return existing_run(tx, run_id)

    def open_run_file(self, principal: Principal, run_id: str, path: str) -> tuple[RunArtifact, Iterator[bytes]]:
        principal.require("download run files", READ)
        validate_run_id(run_id)
        validate_artifact_path(path)
        with self._store.transaction() as tx:
            existing_run(tx, run_id)
            found = [f for f in tx.run_artifacts(run_id, path) if f.path == path]
        if not found:
            raise NotFound(f"run {run_id} has no file {path[:200]!r}")
        return found[0], self._artifacts.read(found[0].digest, self.policy.download_chunk_bytes)

    def run_files(self, principal: Principal, run_id: str) -> list[RunArtifact]:
        """Every file of the run, by path."""
        principal.require("list run files", READ)
        with self._store.transaction() as tx:
            existing_run(tx, validate_run_id(run_id))
            return tx.run_artifacts(run_id, "")

    def list_run_files(self, principal: Principal, run_id: str, path: str = "") -> list[FileEntry]:
        """The files and directories directly under `path` of the run (its root when empty), like MLflow's listing."""
        principal.require("list run files", READ)
        validate_run_id(run_id)
        if path:
            validate_artifact_path(path)
        with self._store.transaction() as tx:
            existing_run(tx, run_id)
            files = tx.run_artifacts(run_id, path)
        entries: dict[str, FileEntry] = {}
        base = f"{path}/" if path else ""
        for item in files:
            if item.path == path:
                continue  # `path` names a file: MLflow lists nothing under a file
            head, sep, _ = item.path[len(base) :].partition("/")
            child = base + head
            entries[child] = FileEntry(child, True) if sep else FileEntry(child, False, item.size_bytes)
        return sorted(entries.values(), key=lambda e: e.path)

    def register_from_run(
        self, principal: Principal, model_name: str, source: str, run_id: str = "", tags: Mapping[str, str] = {}
    ) -> ModelVersion:
        """Register the ONNX file at `source` (`runs:/<run_id>/<path>`, a file or a directory holding exactly one
        .onnx) as a new version: the same ingestion and checks as an upload (signature read from the ONNX, digest
        verified, PENDING_REGISTRATION -> READY), with the run as its lineage."""
        principal.require("register model versions", PUBLISH)
        source_run, path = run_id_in_source(source)
        if run_id and run_id != source_run:
            raise InvalidArgument(f"run_id {run_id[:40]!r} is not the run of source {source[:100]!r}")
        with self._store.transaction() as tx:
            run = existing_run(tx, source_run)
            candidates = [f for f in tx.run_artifacts(source_run, path) if f.path.endswith(".onnx")]
        if len(candidates) != 1:
            found = "no .onnx file" if not candidates else f"{len(candidates)} .onnx files"
            raise InvalidArgument(f"run {source_run} has {found} at {path!r}: register exactly one ONNX model")
        with self._artifacts.stage(self.policy.max_artifact_bytes) as staged:
            # A private copy for the inspector, verified against the digest as it is read.
            for chunk in self._artifacts.read(candidates[0].digest, self.policy.download_chunk_bytes):
                staged.write(chunk)
            staged.finish()
            artifact = self._ingest(principal, MediaType.ONNX, staged)
        new = NewVersion(model_name, artifact.digest, lineage=run_lineage(run, path), tags=tags)
        return self.create_version(principal, new)
