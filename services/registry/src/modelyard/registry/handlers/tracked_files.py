"""The registry's use cases, the files of runs and of logged models: upload and download (content-addressed blobs,
verified both ways), listing, and registering a model version from such an ONNX file with the run (and logged
model) as its lineage. A file's owner is a run id or a logged model id (`m-...`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterator, Mapping
from dataclasses import dataclass, replace

from modelyard.auth import Principal
from modelyard.registry.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from modelyard.registry.domain.logged_models import LoggedModel, LoggedModelStatus, file_source, is_model_id
from modelyard.registry.domain.model import Lineage, MediaType, ModelVersion
from modelyard.registry.domain.ports import RegistryTransaction
from modelyard.registry.domain.tracking import Run, RunArtifact, validate_artifact_path
from modelyard.registry.handlers.artifacts import ArtifactUseCases
from modelyard.registry.handlers.base import PUBLISH, READ
from modelyard.registry.handlers.logged_models import existing_logged_model
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


def logged_model_lineage(model: LoggedModel, run: Run | None) -> Lineage:
    """A logged model's lineage: its run's (when it has one), with the model's own parameters and latest metrics
    over the run's, and `models:/<model_id>` as the source."""
    base = run_lineage(run, "") if run is not None else Lineage()
    metrics = dict(base.metrics)
    for metric in sorted(model.metrics, key=lambda m: (m.step, m.timestamp_ms)):
        metrics[metric.key] = metric.value
    return replace(
        base,
        parameters={**base.parameters, **model.params},
        metrics=metrics,
        source=f"models:/{model.model_id}",
    )


def _existing_owner(tx: RegistryTransaction, owner: str) -> Run | LoggedModel:
    return existing_logged_model(tx, owner) if is_model_id(owner) else existing_run(tx, owner)


class TrackedFileUseCases(ArtifactUseCases, VersionUseCases):
    async def upload_file(
        self, principal: Principal, owner: str, path: str, chunks: AsyncIterable[bytes]
    ) -> RunArtifact:
        """Store a file of a run or a logged model: streamed into the store as it arrives (hashed as it goes; no
        inspector reads it), then named by its path. Nothing is named if the upload fails half way: what was
        received is dropped on the way out."""
        principal.require("upload run files", PUBLISH)
        validate_artifact_path(path)
        await asyncio.to_thread(self._check_owner, owner)
        with self._artifacts.receive(self.policy.max_artifact_bytes) as staged:
            async for chunk in chunks:
                await asyncio.to_thread(staged.write, chunk)
            digest = await asyncio.to_thread(staged.finish)
            await asyncio.to_thread(self._artifacts.commit, staged)
            artifact = RunArtifact(path, digest, staged.size_bytes)
        with self._store.transaction(write=True) as tx:
            _existing_owner(tx, owner)
            tx.put_file(owner, artifact)
        return artifact

    def _check_owner(self, owner: str) -> None:
        with self._store.transaction() as tx:
            _existing_owner(tx, owner)

    def open_file(self, principal: Principal, owner: str, path: str) -> tuple[RunArtifact, Iterator[bytes]]:
        principal.require("download run files", READ)
        validate_artifact_path(path)
        with self._store.transaction() as tx:
            _existing_owner(tx, owner)
            found = [f for f in tx.files(owner, path) if f.path == path]
        if not found:
            raise NotFound(f"{owner} has no file {path[:200]!r}")
        return found[0], self._artifacts.read(found[0].digest, self.policy.download_chunk_bytes)

    def files_of(self, principal: Principal, owner: str) -> list[RunArtifact]:
        """Every file of the run or logged model, by path."""
        principal.require("list run files", READ)
        with self._store.transaction() as tx:
            _existing_owner(tx, owner)
            return tx.files(owner, "")

    def list_files(self, principal: Principal, owner: str, path: str = "") -> list[FileEntry]:
        """The files and directories directly under `path` (the root when empty), like MLflow's listing."""
        principal.require("list run files", READ)
        if path:
            validate_artifact_path(path)
        with self._store.transaction() as tx:
            _existing_owner(tx, owner)
            files = tx.files(owner, path)
        entries: dict[str, FileEntry] = {}
        base = f"{path}/" if path else ""
        for item in files:
            if item.path == path:
                continue  # `path` names a file: MLflow lists nothing under a file
            head, sep, _ = item.path[len(base) :].partition("/")
            child = base + head
            entries[child] = FileEntry(child, True) if sep else FileEntry(child, False, item.size_bytes)
        return sorted(entries.values(), key=lambda e: e.path)

    def register_from_source(
        self,
        principal: Principal,
        model_name: str,
        source: str,
        run_id: str = "",
        tags: Mapping[str, str] = {},
        model_id: str = "",
    ) -> ModelVersion:
        """Register the ONNX file at `source` (`runs:/<run_id>/<path>`, `models:/<model_id>` or their artifact URIs;
        a file or a directory holding exactly one .onnx) as a new version: the same ingestion and checks as an
        upload (signature read from the ONNX, digest verified, PENDING_REGISTRATION -> READY), with the run and
        logged model as its lineage."""
        principal.require("register model versions", PUBLISH)
        owner, path = file_source(source)
        if model_id and model_id != owner:
            raise InvalidArgument(f"model_id {model_id[:40]!r} is not the logged model of source {source[:100]!r}")
        with self._store.transaction() as tx:
            lineage = self._source_lineage(tx, owner, path, run_id)
            candidates = [f for f in tx.files(owner, path) if f.path.endswith(".onnx")]
            known = tx.get_artifact(candidates[0].digest) if len(candidates) == 1 else None
        if len(candidates) != 1:
            found = "no .onnx file" if not candidates else f"{len(candidates)} .onnx files"
            raise InvalidArgument(f"{owner} has {found} at {path!r}: register exactly one ONNX model")
        digest = candidates[0].digest
        if known is None or known.media_type is not MediaType.ONNX:
            # Bytes not ingested yet: the same ingestion as an upload, on a private copy for the inspector, verified
            # against the digest as it is read. (Ingested bytes, the same by their digest, were inspected then; the
            # version's checks verify the stored object either way.)
            with self._artifacts.stage(self.policy.max_artifact_bytes) as staged:
                for chunk in self._artifacts.read(digest, self.policy.download_chunk_bytes):
                    staged.write(chunk)
                staged.finish()
                digest = self._ingest(principal, MediaType.ONNX, staged).digest
        return self.create_version(principal, NewVersion(model_name, digest, lineage=lineage, tags=tags))

    def _source_lineage(self, tx: RegistryTransaction, owner: str, path: str, run_id: str) -> Lineage:
        if not is_model_id(owner):
            if run_id and run_id != owner:
                raise InvalidArgument(f"run_id {run_id[:40]!r} is not the run of the source")
            return run_lineage(existing_run(tx, owner), path)
        model = existing_logged_model(tx, owner)
        if model.status is not LoggedModelStatus.READY:
            raise FailedPrecondition(
                f"logged model {owner} is {model.status.value}: its upload must finish (LOGGED_MODEL_READY) first"
            )
        if run_id and run_id != model.source_run_id:
            raise InvalidArgument(f"run_id {run_id[:40]!r} is not the run that logged model {owner}")
        run = existing_run(tx, model.source_run_id) if model.source_run_id else None
        return logged_model_lineage(model, run)
