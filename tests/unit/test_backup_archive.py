"""`modelyard backup` without a stack: a data dir of SQLite databases, keys and artifacts round-trips; verify names
a missing, extra or altered member; restore refuses a non-empty dir, a database that exists or one of another
kind, before writing anything."""

from __future__ import annotations

import io
import sqlite3
import tarfile
import uuid
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from modelyard.backup.archive import AuditRecord, Manifest, writing
from modelyard.cli.app import app
from modelyard.governance.domain import audit

pytestmark = pytest.mark.unit

SERVICES = ("registry", "governance", "monitor")
BLOB = "ab" + "0" * 62


def run(*args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(app, ["backup", *args], env={"COLUMNS": "200", "MODELYARD_TOKEN": ""})
    assert (result.exit_code == 0) is ok, result.output
    return result.output


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    for service in SERVICES:
        (data / service).mkdir(parents=True)
        with closing(sqlite3.connect(data / service / f"{service}.db")) as db:
            db.execute("CREATE TABLE facts (what TEXT)")
            db.execute("INSERT INTO facts VALUES (?)", (f"{service} remembers",))
            db.commit()
    key = data / "governance" / "audit-signing.key"
    key.write_text("seed")
    key.chmod(0o600)
    blob = data / "registry" / "artifacts" / "sha256" / BLOB[:2] / BLOB
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"model bytes")
    path = tmp_path / "backup.tar"
    assert "3 databases, 1 artifacts, 0 audit exports" in run("create", str(path), "--data-dir", str(data))
    return path


def rewrite(source: Path, target: Path, *, change: str = "", drop: str = "", add: str = "") -> Path:
    with tarfile.open(source) as old, tarfile.open(target, "w") as new:
        for info in old:
            file = old.extractfile(info)
            assert file is not None
            payload = file.read()
            if info.name == drop:
                continue
            if info.name == change:
                payload = payload.replace(b"model", b"MODEL")
            info.size = len(payload)
            new.addfile(info, io.BytesIO(payload))
        if add:
            extra = tarfile.TarInfo(add)
            new.addfile(extra, io.BytesIO(b""))
    return target


def test_a_data_dir_round_trips(archive: Path, tmp_path: Path) -> None:
    assert "backup intact: 5 members" in run("verify", str(archive))
    restored = tmp_path / "restored"
    run("restore", str(archive), "--data-dir", str(restored))
    for service in SERVICES:
        with closing(sqlite3.connect(restored / service / f"{service}.db")) as db:
            assert db.execute("SELECT what FROM facts").fetchall() == [(f"{service} remembers",)]
    assert (restored / "registry/artifacts/sha256" / BLOB[:2] / BLOB).read_bytes() == b"model bytes"
    assert (restored / "governance/audit-signing.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ({"change": f"data/registry/artifacts/sha256/{BLOB[:2]}/{BLOB}"}, "does not match its digest"),
        ({"drop": "databases/monitor.db"}, "1 members of the manifest are missing, e.g. databases/monitor.db"),
        ({"add": "data/registry/smuggled"}, "member data/registry/smuggled is not in the manifest"),
        ({"drop": "manifest.json"}, "no manifest.json: not a modelyard backup"),
    ],
)
def test_verify_names_what_is_wrong(archive: Path, tmp_path: Path, edit: dict[str, str], problem: str) -> None:
    assert problem in run("verify", str(rewrite(archive, tmp_path / "bad.tar", **edit)), ok=False)


def test_restore_refuses_a_non_empty_dir_and_a_database_of_another_kind(archive: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    assert "is not empty" in run("restore", str(archive), "--data-dir", str(taken), ok=False)
    assert (taken / "keep.txt").read_text() == "mine"
    wrong = ["--database", "registry=postgresql+psycopg://nobody@127.0.0.1:1/none"]
    assert "holds a sqlite snapshot" in run(
        "restore", str(archive), "--data-dir", str(tmp_path / "x"), *wrong, ok=False
    )


def test_a_refused_restore_writes_nothing(archive: Path, tmp_path: Path) -> None:
    target = tmp_path / "refused"
    taken = tmp_path / "elsewhere" / "monitor.db"  # the monitor's target exists: checked before anything is written
    taken.parent.mkdir()
    taken.write_text("already here")
    database = f"monitor=sqlite:///{taken}"
    failed = run("restore", str(archive), "--data-dir", str(target), "--database", database, ok=False)
    assert "exists: restore only into an empty data dir" in failed
    assert not target.exists()
    assert taken.read_text() == "already here"


def archive_with_audit(tmp_path: Path, signer: Ed25519PrivateKey, archived: Ed25519PrivateKey) -> Path:
    """An archive holding an audit export signed by `signer` and, as governance's key, `archived`."""
    entry = audit.chain_entry(
        None, recorded_at=datetime.now(UTC), kind="Approved", event_id="e1", source="governance",
        model_name="fraud.v2", body={"by": "bob"},
    )  # fmt: skip
    checkpoint = audit.sign_checkpoint(signer, entry, datetime.now(UTC))
    public = signer.public_key().public_bytes_raw().hex()
    export = tmp_path / "export.jsonl"
    records = audit.export_records([entry], lambda e: True, checkpoint, public)
    export.write_text("".join(audit.canonical_json(record) + "\n" for record in records))
    key = tmp_path / "audit-signing.key"
    key.write_text(archived.private_bytes_raw().hex())
    path = tmp_path / f"audit-{uuid.uuid4().hex[:6]}.tar"
    with writing(path) as writer:
        writer.add("audit/fraud.v2.jsonl", export)
        writer.add("data/governance/audit-signing.key", key)
        writer.finish(
            Manifest(
                created_at=datetime.now(UTC),
                modelyard_version="test",
                databases={},
                audit=AuditRecord(models={"fraud.v2": "audit/fraud.v2.jsonl"}, entries=1),
                members=dict(writer.members),
            )
        )
    return path


def test_audit_exports_must_be_signed_by_the_archived_governance_key(tmp_path: Path) -> None:
    governance, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    assert "1 audit entries verified" in run("verify", str(archive_with_audit(tmp_path, governance, governance)))
    forged = run("verify", str(archive_with_audit(tmp_path, stranger, governance)), ok=False)
    assert "the audit export of fraud.v2 does not verify: signed with key" in forged
