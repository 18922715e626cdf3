"""`modelyard backup create|verify|restore`: the whole platform's state in one archive, checked, and put back onto
an empty data dir (and empty PostgreSQL databases). The pieces live in `modelyard.backup`; this module wires them
and talks to the running stack for the audit export."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import grpc
import typer
from rich.console import Console

from modelyard.backup import archive, databases, plan
from modelyard.backup.archive import ArchiveError, AuditRecord, DatabaseRecord, Manifest
from modelyard.backup.databases import DatabaseError
from modelyard.backup.plan import PlanError
from modelyard.cli.stack import DEFAULT_DATA_DIR, StackState

backup_app = typer.Typer(
    help="Back up the platform (databases, artifacts, keys, audit export) into one archive; verify; restore.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[Path, typer.Option(help="The stack's data dir, as given to `modelyard up`.")]
Databases = Annotated[
    list[str] | None,
    typer.Option(
        "--database",
        metavar="SERVICE=URL",
        help="A service's database URL (default: its settings, else SQLite in <data-dir>/<service>); repeatable.",
    ),
]
Token = Annotated[str, typer.Option("--token", envvar="MODELYARD_TOKEN", help="bearer token", show_default=False)]
AUDIT_MEMBER = "audit/{model}.jsonl"


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@contextmanager
def _errors_exit() -> Iterator[None]:
    try:
        yield
    except (ArchiveError, DatabaseError, PlanError) as exc:
        _fail(str(exc))


@backup_app.command()
def create(
    output: Annotated[Path, typer.Argument(help="Archive to write (.tar, or .tar.gz to compress).")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database: Databases = None,
    token: Token = "",
) -> None:
    """Snapshot every service's database (consistent, while the services run), the artifacts, the signing keys,
    and, when the stack runs, governance's audit export of every model."""
    if output.exists():
        _fail(f"{output} exists: choose a new file")
    data_dir = data_dir.resolve()
    with _errors_exit(), tempfile.TemporaryDirectory(dir=output.resolve().parent) as scratch:
        urls = plan.database_urls(data_dir, plan.parse_database_options(database or []))
        exports = _export_audit(data_dir, token, Path(scratch))
        with archive.writing(output) as writer:
            for model, path in exports.items():
                writer.add(AUDIT_MEMBER.format(model=model), path)
            records = {}
            for service, url in urls.items():
                kind = databases.kind_of(url)
                dump = Path(scratch) / f"{service}{databases.DUMP_SUFFIX[kind]}"
                with err.status(f"snapshotting {service}'s {kind} database"):
                    revision = databases.schema_revision(url)
                    databases.snapshot(url, dump)
                    member = plan.database_member(service, kind)
                    writer.add(member, dump)
                records[service] = DatabaseRecord(
                    kind=kind, member=member, url=databases.describe(url), schema_revision=revision
                )
            for member, path in plan.key_files(data_dir):
                writer.add(member, path)
            blobs = plan.artifacts_dir(data_dir)
            if blobs.is_dir():
                with err.status(f"adding the artifacts of {blobs.parent}"):
                    writer.add_tree(f"{plan.ARTIFACTS_MEMBER}/sha256", blobs)
            manifest = Manifest(
                created_at=datetime.now(UTC),
                modelyard_version=importlib.metadata.version("modelyard-core"),
                databases=records,
                audit=_audit_record(exports) if exports else None,
                members=dict(writer.members),
            )
            writer.finish(manifest)
    artifacts = sum(1 for name in manifest.members if name.startswith(plan.ARTIFACTS_MEMBER))
    size = sum(m.size for m in manifest.members.values())
    out.print(
        f"wrote {output}: {len(records)} databases, {artifacts} artifacts, "
        f"{len(exports)} audit exports, {size} bytes before compression"
    )


def _export_audit(data_dir: Path, token: str, scratch: Path) -> dict[str, Path]:
    """{model: file} of governance's export of each registered model's audit entries, taken before the
    databases (so the snapshot holds everything exported); empty when no stack runs on `data_dir`."""
    from modelyard.cli import registry as registry_cli
    from modelyard.contracts.governance.v1 import governance_service_pb2 as gov
    from modelyard.contracts.governance.v1 import governance_service_pb2_grpc as gov_grpc
    from modelyard.contracts.registry.v1 import registry_service_pb2 as reg

    state = StackState.load(data_dir)
    if state is None or not state.owner_alive():
        err.print("[yellow]no stack runs on this data dir: the archive holds no audit export[/]")
        return {}
    exports: dict[str, Path] = {}  # model -> its export
    with registry_cli._client(state.services["registry"].grpc, token) as (registry, metadata):
        pages = registry_cli._pages(registry.ListRegisteredModels, reg.ListRegisteredModelsRequest(), metadata)
        models = [m.name for page in pages for m in page.registered_models]
    with grpc.insecure_channel(state.services["governance"].grpc) as channel:
        stub = gov_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
        for model in models:
            try:
                lines = stub.ExportAudit(gov.ExportAuditRequest(model_name=model), metadata=metadata).lines
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:  # the audit trail is empty
                    continue
                _fail(f"audit export of {model}: {exc.code().name}: {exc.details()}")
            if any(json.loads(line)["type"] == "entry" for line in lines):
                path = scratch / f"audit-{len(exports)}.jsonl"
                path.write_text("".join(line + "\n" for line in lines))
                exports[model] = path
    return exports


def _audit_record(exports: dict[str, Path]) -> AuditRecord:
    entries = sum(
        1 for path in exports.values() for line in path.read_text().splitlines() if json.loads(line)["type"] == "entry"
    )
    return AuditRecord(models={model: AUDIT_MEMBER.format(model=model) for model in exports}, entries=entries)


def _check(path: Path) -> Manifest:
    """Every member's digest, then every audit export's own chain and signature. Raises ArchiveError."""
    from modelyard.governance.domain.audit import verify_export

    with archive.reading(path) as tar:
        manifest = archive.read_manifest(tar)
        archive.verify_members(tar, manifest)
        exports = manifest.audit.models if manifest.audit else {}
        trusted = _audit_key_id(tar) if exports and plan.AUDIT_KEY_MEMBER in manifest.members else None
        for model, member in exports.items():
            records = [json.loads(line) for line in _read(tar, member).decode().splitlines() if line.strip()]
            # Signed by the key the archive restores, not merely by the key the export names.
            result = verify_export(records, trusted)
            if not result.ok:
                raise ArchiveError(f"the audit export of {model} does not verify: {result.problem}")
    return manifest


def _read(tar: tarfile.TarFile, member: str) -> bytes:
    file = tar.extractfile(member)
    assert file is not None  # verify_members checked that every member is a file
    return file.read()


def _audit_key_id(tar: tarfile.TarFile) -> str:
    from pydantic import SecretStr

    from modelyard.events.signing import key_id, load_private_key

    try:
        key = load_private_key(SecretStr(_read(tar, plan.AUDIT_KEY_MEMBER).decode()), Path(os.devnull))
    except (ValueError, UnicodeDecodeError):
        raise ArchiveError(f"{plan.AUDIT_KEY_MEMBER} is not an Ed25519 key seed") from None
    return key_id(key.public_key())


@backup_app.command()
def verify(path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Archive to check.")]) -> None:
    """Check every member against the manifest's digests and that the audit exports verify."""
    with _errors_exit(), err.status(f"checking {path.name}"):
        manifest = _check(path)
    revisions = ", ".join(f"{s} {r.kind} at {r.schema_revision}" for s, r in manifest.databases.items())
    audit = f"{manifest.audit.entries} audit entries verified" if manifest.audit else "no audit export"
    out.print(f"backup intact: {len(manifest.members)} members match their digests; {audit}; {revisions}")


@contextmanager
def _emptied_on_failure(data_dir: Path) -> Iterator[None]:
    """A restore that fails half way leaves the (empty or new) data dir as it found it."""
    try:
        yield
    except BaseException:
        if data_dir.is_dir():
            for child in data_dir.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise


@backup_app.command()
def restore(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Archive to restore.")],
    data_dir: Annotated[Path, typer.Option(help="An empty (or new) data dir to restore into.")],
    database: Databases = None,
) -> None:
    """Restore onto an empty data dir (and into empty PostgreSQL databases given with --database); then run
    `modelyard up --data-dir` on it."""
    data_dir = data_dir.resolve()
    if data_dir.exists() and any(data_dir.iterdir()):
        _fail(f"{data_dir} is not empty: restore only into an empty or new data dir")
    with _errors_exit(), _emptied_on_failure(data_dir):
        manifest = _check(path)
        overrides = plan.parse_database_options(database or [])
        targets = {
            service: plan.restore_url(service, record.kind, data_dir, overrides)
            for service, record in manifest.databases.items()
        }
        for url in targets.values():  # before writing anything: every target must be empty
            databases.require_empty(url)
        data_dir.mkdir(parents=True, exist_ok=True)
        with archive.reading(path) as tar, tempfile.TemporaryDirectory(dir=data_dir.parent) as scratch:
            files = [info for info in tar.getmembers() if info.name.startswith(f"{archive.DATA}/")]
            tar.extractall(scratch, members=files, filter="data")
            for info in files:
                target = data_dir / Path(info.name).relative_to(archive.DATA)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(Path(scratch) / info.name, target)
            for service, record in manifest.databases.items():
                tar.extract(record.member, scratch, filter="data")
                databases.restore(targets[service], Path(scratch) / record.member)
    out.print(
        f"restored {len(manifest.databases)} databases and {len(files)} files into {data_dir} "
        f"(backup of {manifest.created_at:%Y-%m-%d %H:%M:%S} UTC); start it with `modelyard up --data-dir {data_dir}`"
    )
