"""`modelyard models ...` and `modelyard alias ...`: the registry from the command line, over gRPC."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import grpc
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from modelyard.cli.connection import client_tls
from modelyard.contracts.events.v1 import registry_events_pb2 as ev
from modelyard.contracts.registry.v1 import registry_service_pb2 as pb
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as pb_grpc
from modelyard.tls import grpc_channel

T = TypeVar("T")
CHUNK_BYTES = 1024 * 1024
MEDIA_TYPES = {
    ".onnx": "application/onnx",
    ".tar": "application/x-onnx-bundle+tar",
    ".csv": "text/csv",
    ".parquet": "application/vnd.apache.parquet",
}
# Recorded as the registered version's environment when installed where the CLI runs.
LINEAGE_PACKAGES = ("onnx", "onnxruntime", "scikit-learn", "skl2onnx", "torch", "xgboost", "lightgbm", "numpy")

models_app = typer.Typer(help="Registered models and their versions.", no_args_is_help=True)
alias_app = typer.Typer(help="Aliases (e.g. production) and their history.", no_args_is_help=True)
admin_app = typer.Typer(help="Registry administration (role admin).", no_args_is_help=True)
out = Console()
err = Console(stderr=True, soft_wrap=True)

Registry = Annotated[str, typer.Option("--registry", envvar="MODELYARD_REGISTRY_ADDRESS", help="registry gRPC address")]
Token = Annotated[str, typer.Option("--token", envvar="MODELYARD_TOKEN", help="bearer token", show_default=False)]


@contextlib.contextmanager
def _client(address: str, token: str) -> Iterator[tuple[pb_grpc.RegistryServiceStub, list[tuple[str, str]]]]:
    with grpc_channel(address, client_tls()) as channel:
        stub = pb_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        yield stub, [("authorization", f"Bearer {token}")] if token else []


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _call(method: Callable[..., T], request: object, metadata: list[tuple[str, str]]) -> T:
    """One RPC; a failure becomes a one-line error and exit status 1."""
    try:
        return method(request, metadata=metadata)
    except grpc.RpcError as exc:
        _fail(f"{exc.code().name}: {exc.details()}")


def _pages(method: Callable[..., T], request: Any, metadata: list[tuple[str, str]]) -> Iterator[T]:
    """Every page of a paginated list call (requests and responses with page_token / next_page_token)."""
    while True:
        page: Any = _call(method, request, metadata)
        yield page
        if not page.next_page_token:
            return
        request.page_token = page.next_page_token


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep:
            _fail(f"{what} {value!r} must be key=value")
        pairs[key] = rest
    return pairs


def _media_type(path: Path) -> str:
    media = MEDIA_TYPES.get(path.suffix.lower())
    if media is None:
        _fail(f"cannot tell the media type of {path.name}: expected one of {', '.join(MEDIA_TYPES)}")
    return media


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err
    )


def _digest(path: Path, progress: Progress) -> str:
    task = progress.add_task(f"hashing {path.name}", total=path.stat().st_size)
    hasher = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            hasher.update(chunk)
            progress.advance(task, len(chunk))
    return "sha256:" + hasher.hexdigest()


def _upload(
    stub: pb_grpc.RegistryServiceStub, metadata: list[tuple[str, str]], path: Path, progress: Progress
) -> pb.Artifact:
    digest = _digest(path, progress)
    size = path.stat().st_size
    task = progress.add_task(f"uploading {path.name}", total=size)

    def requests() -> Iterator[pb.UploadArtifactRequest]:
        header = pb.UploadArtifactRequest.Header(media_type=_media_type(path), digest=digest, size_bytes=size)
        yield pb.UploadArtifactRequest(header=header)
        with path.open("rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                yield pb.UploadArtifactRequest(chunk=chunk)
                progress.advance(task, len(chunk))

    response: pb.UploadArtifactResponse = _call(stub.UploadArtifact, requests(), metadata)
    return response.artifact


def _environment() -> dict[str, str]:
    environment = {"python": platform.python_version()}
    for package in LINEAGE_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            environment[package] = importlib.metadata.version(package)
    return environment


@models_app.command()
def register(
    name: Annotated[str, typer.Argument(help="registered model name (created if new)")],
    model: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".onnx file or .tar bundle")],
    reference_dataset: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="CSV or Parquet reference data")
    ] = None,
    label_column: Annotated[str, typer.Option(help="target column of the reference dataset")] = "",
    feature_names: Annotated[
        list[str] | None,
        typer.Option(
            help="input=name,name,... the column names of an input's features (default: the reference dataset's "
            "columns minus the label, for a single-input model); repeatable"
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="description, for a new model")] = "",
    tag: Annotated[list[str] | None, typer.Option(help="key=value tag of the version; repeatable")] = None,
    code_revision: Annotated[str, typer.Option(help="revision of the training code")] = "",
    metric: Annotated[list[str] | None, typer.Option(help="name=value evaluation metric; repeatable")] = None,
    param: Annotated[list[str] | None, typer.Option(help="name=value training parameter; repeatable")] = None,
    registry: Registry = "127.0.0.1:50051",
    token: Token = "",
) -> None:
    """Upload a model (and its reference dataset) and register it as the model's next version."""
    metrics = {}
    for key, value in _pairs(metric or [], "metric").items():
        try:
            metrics[key] = float(value)
        except ValueError:
            _fail(f"metric {key!r} is not a number: {value!r}")
    with _client(registry, token) as (stub, metadata):
        try:
            stub.CreateRegisteredModel(
                pb.CreateRegisteredModelRequest(name=name, description=description), metadata=metadata
            )
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                _fail(f"{exc.code().name}: {exc.details()}")
        with _progress() as progress:
            artifact = _upload(stub, metadata, model, progress)
            reference = _upload(stub, metadata, reference_dataset, progress) if reference_dataset else None
        request = pb.CreateModelVersionRequest(
            model_name=name,
            artifact_digest=artifact.digest,
            reference_dataset_digest=reference.digest if reference else "",
            label_column=label_column,
            feature_names={
                tensor: pb.FeatureNames(names=[n.strip() for n in names.split(",")])
                for tensor, names in _pairs(feature_names or [], "feature names").items()
            },
            tags=_pairs(tag or [], "tag"),
            lineage=pb.Lineage(
                training_datasets=[reference.digest] if reference else [],
                code_revision=code_revision,
                parameters=_pairs(param or [], "param"),
                metrics=metrics,
                environment=_environment(),
            ),
        )
        version = _call(stub.CreateModelVersion, request, metadata).model_version
    out.print(f"registered [bold]{name}[/bold] version [bold]{version.version}[/bold] ({version.digest})")


@models_app.command("list")
def list_models(
    name_contains: Annotated[str, typer.Option(help="only names containing this")] = "",
    registry: Registry = "127.0.0.1:50051",
    token: Token = "",
) -> None:
    """List registered models."""
    table = Table("name", "latest version", "aliases", "owner", "created")
    with _client(registry, token) as (stub, metadata):
        request = pb.ListRegisteredModelsRequest(name_contains=name_contains)
        for page in _pages(stub.ListRegisteredModels, request, metadata):
            for m in page.registered_models:
                aliases = ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items()))
                created = m.created_at.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M")
                table.add_row(m.name, str(m.latest_version), aliases, m.owner, created)
    out.print(table)


def _version(
    stub: pb_grpc.RegistryServiceStub, metadata: list[tuple[str, str]], name: str, number: int
) -> pb.ModelVersion:
    response: pb.GetModelVersionResponse = _call(
        stub.GetModelVersion, pb.GetModelVersionRequest(model_name=name, version=number), metadata
    )
    return response.model_version


def _status(value: int) -> str:
    return ev.ModelVersionStatus.Name(value).removeprefix("MODEL_VERSION_STATUS_")


def _shape(spec: pb.TensorSpec) -> str:
    if not spec.HasField("shape"):
        return "?"
    return "[" + ", ".join(d.param or (str(d.value) if d.HasField("value") else "?") for d in spec.shape.dims) + "]"


@models_app.command()
def show(
    name: str,
    version: Annotated[int, typer.Option(help="show this version in detail")] = 0,
    registry: Registry = "127.0.0.1:50051",
    token: Token = "",
) -> None:
    """Show a model and its versions, or one version's signature and lineage."""
    with _client(registry, token) as (stub, metadata):
        if version:
            v = _version(stub, metadata, name, version)
            out.print(f"[bold]{v.model_name}[/bold] version {v.version}: {_status(v.status)} ({v.status_message})")
            out.print(f"digest {v.digest}, {v.size_bytes} bytes, by {v.created_by}")
            table = Table("", "name", "type", "shape", "features")
            for kind, specs in (("input", v.signature.inputs), ("output", v.signature.outputs)):
                for spec in specs:
                    features = ", ".join(spec.feature_names[:5]) + (" …" if len(spec.feature_names) > 5 else "")
                    table.add_row(kind, spec.name, spec.element_type, _shape(spec), features)
            out.print(table)
            if v.lineage.metrics or v.lineage.code_revision:
                out.print(f"code {v.lineage.code_revision or '-'}; metrics {dict(v.lineage.metrics)}")
            return
        model = _call(stub.GetRegisteredModel, pb.GetRegisteredModelRequest(name=name), metadata)
        m = model.registered_model
        out.print(f"[bold]{m.name}[/bold] — {m.description or 'no description'} (owner {m.owner})")
        versions = Table("version", "status", "digest", "created by", "aliases")
        aliases: dict[int, list[str]] = {}
        for alias, number in m.aliases.items():
            aliases.setdefault(number, []).append(alias)
        listed = _call(stub.ListModelVersions, pb.ListModelVersionsRequest(model_name=name), metadata)
        for v in listed.model_versions:
            versions.add_row(
                str(v.version),
                _status(v.status),
                v.digest[:19] + "…",
                v.created_by,
                ", ".join(aliases.get(v.version, [])),
            )
        out.print(versions)


@models_app.command()
def download(
    name: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="file to write")],
    version: Annotated[int, typer.Option(help="version number")] = 0,
    alias: Annotated[str, typer.Option(help="alias, e.g. production (default: latest)")] = "",
    registry: Registry = "127.0.0.1:50051",
    token: Token = "",
) -> None:
    """Download a model version's artifact, verified against its digest."""
    with _client(registry, token) as (stub, metadata):
        if version:
            target = _version(stub, metadata, name, version)
        else:
            resolve = pb.ResolveAliasRequest(model_name=name, alias=alias or "latest")
            target = _call(stub.ResolveAlias, resolve, metadata).model_version
        hasher = hashlib.sha256()
        # Written beside the target and renamed only once verified: a cut-off download never looks complete.
        fd, partial = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
        try:
            with os.fdopen(fd, "wb") as file, _progress() as progress:
                task = progress.add_task(f"downloading {name} v{target.version}", total=target.size_bytes)
                stream = stub.DownloadArtifact(pb.DownloadArtifactRequest(digest=target.digest), metadata=metadata)
                for response in _stream(stream):
                    hasher.update(response.chunk)
                    file.write(response.chunk)
                    progress.advance(task, len(response.chunk))
            if "sha256:" + hasher.hexdigest() != target.digest:
                _fail(f"downloaded bytes do not match {target.digest}")
            os.replace(partial, output)
        finally:
            Path(partial).unlink(missing_ok=True)
    out.print(f"wrote {output} ({name} version {target.version}, {target.digest})")


def _stream(stream: Iterator[pb.DownloadArtifactResponse]) -> Iterator[pb.DownloadArtifactResponse]:
    """Iterate a server stream, turning a mid-stream RpcError into the CLI's error exit."""
    try:
        yield from stream
    except grpc.RpcError as exc:
        _fail(f"{exc.code().name}: {exc.details()}")


@alias_app.command("set")
def set_alias(
    name: str,
    alias: str,
    version: int,
    reason: Annotated[str, typer.Option(help="why, kept in the alias history")] = "",
    registry: Registry = "127.0.0.1:50051",
    token: Token = "",
) -> None:
    """Point an alias at a version."""
    with _client(registry, token) as (stub, metadata):
        request = pb.SetAliasRequest(model_name=name, alias=alias, version=version, reason=reason)
        move = _call(stub.SetAlias, request, metadata).move
    was = f"was {move.from_version}" if move.from_version else "new"
    out.print(f"{name}@{alias} → version {move.to_version} ({was})")


@alias_app.command()
def history(
    name: str,
    alias: str,
    registry: Registry = "127.0.0.1:50051",
    token: Token = "",
) -> None:
    """Every move of an alias, newest first."""
    table = Table("when", "from", "to", "by", "reason")
    with _client(registry, token) as (stub, metadata):
        request = pb.ListAliasHistoryRequest(model_name=name, alias=alias)
        for page in _pages(stub.ListAliasHistory, request, metadata):
            for move in page.moves:
                when = move.moved_at.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds")
                to = str(move.to_version or "deleted")
                table.add_row(when, str(move.from_version or "-"), to, move.moved_by, move.reason)
    out.print(table)


@admin_app.command("gc")
def collect_garbage(
    delete: Annotated[bool, typer.Option("--delete", help="delete them (default: a dry run that only lists)")] = False,
    registry: Registry = "127.0.0.1:50051",
    token: Token = "",
) -> None:
    """Find the stored blobs no model version names, older than the registry's grace period; delete them with
    --delete."""
    with _client(registry, token) as (stub, metadata):
        report = _call(stub.CollectGarbage, pb.CollectGarbageRequest(delete=delete), metadata)
    # One line per blob, never wrapped or cut, however narrow the terminal: digests are what an operator copies.
    for blob in report.blobs:
        stored = blob.modified_at.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds")
        out.print(f"{blob.digest}  {blob.size_bytes:>12} bytes  stored {stored}", soft_wrap=True, highlight=False)
    done = "deleted" if report.deleted else "would delete (dry run; --delete deletes)"
    out.print(f"{done} {len(report.blobs)} unreferenced blobs, {report.size_bytes} bytes", soft_wrap=True)
    if report.young_blobs:
        out.print(
            f"kept {report.young_blobs} unreferenced blobs younger than the grace period ({report.grace_s:g} s)",
            soft_wrap=True,
        )
