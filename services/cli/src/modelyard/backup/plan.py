"""What a backup of a data dir holds, and where each part comes from and goes back to: the services' settings
(`MODELYARD_<SERVICE>_DATABASE_URL`, else SQLite under `<data-dir>/<service>`, as `modelyard up` lays them out),
overridden per service with `SERVICE=URL`."""

from __future__ import annotations

from pathlib import Path

from modelyard.backup.archive import DATA
from modelyard.backup.databases import DUMP_SUFFIX, DatabaseKind, kind_of
from modelyard.cli.stack import SERVICES, settings_class

# Snapshot order: the databases that name another's state before the state they name. Governance's requests name
# registry versions and the registry's versions name artifacts: taken in this order, every name resolves after a
# restore (what was added in between is merely unreferenced; governance reconciles aliases with its plans).
SNAPSHOT_ORDER = ("monitor", "governance", "registry")
KEY_PATTERN = "*.key"  # the services' signing keys (audit checkpoints, events), kept in their data dirs locally
TOP_LEVEL_FILES = ("users.json",)  # local identities of `modelyard up --users`
ARTIFACTS_MEMBER = f"{DATA}/registry/artifacts"
AUDIT_KEY_MEMBER = f"{DATA}/governance/audit-signing.key"  # the file governance's bootstrap keeps its key in


class PlanError(Exception):
    """A bad `SERVICE=URL` option or a target the archive cannot go to."""


def parse_database_options(values: list[str]) -> dict[str, str]:
    urls: dict[str, str] = {}
    for value in values:
        service, sep, url = value.partition("=")
        if not sep or service not in SNAPSHOT_ORDER or not url:
            raise PlanError(
                f"--database {value.split('=')[0]!r}...: expected SERVICE=URL, SERVICE one of "
                f"{', '.join(SNAPSHOT_ORDER)}"
            )
        urls[service] = url
    return urls


def database_urls(data_dir: Path, overrides: dict[str, str]) -> dict[str, str]:
    """Each service's database URL, in snapshot order."""
    urls = {}
    for service in SNAPSHOT_ORDER:
        settings = settings_class(service)(data_dir=data_dir / service)
        urls[service] = overrides.get(service) or str(settings.resolved_database_url)  # type: ignore[attr-defined]
    return urls


def artifacts_dir(data_dir: Path) -> Path:
    settings = settings_class("registry")(data_dir=data_dir / "registry")
    return Path(settings.resolved_artifacts_dir) / "sha256"  # type: ignore[attr-defined]


def database_member(service: str, kind: DatabaseKind) -> str:
    return f"databases/{service}{DUMP_SUFFIX[kind]}"


def restore_url(service: str, kind: DatabaseKind, data_dir: Path, overrides: dict[str, str]) -> str:
    """Where a snapshot of `kind` goes back to: the given URL, else the service's default under `data_dir`,
    which must be of the same kind (a PostgreSQL dump needs a PostgreSQL URL)."""
    url = database_urls(data_dir, overrides)[service]
    if kind_of(url) != kind:
        hint = f"pass --database {service}=postgresql+psycopg://..." if kind == "postgresql" else ""
        raise PlanError(f"the archive holds a {kind} snapshot of {service}'s database, not for {kind_of(url)}; {hint}")
    return url


def key_files(data_dir: Path) -> list[tuple[str, Path]]:
    """(member, path) of every file a restore needs besides databases and artifacts."""
    found = [(f"{DATA}/{name}", data_dir / name) for name in TOP_LEVEL_FILES if (data_dir / name).is_file()]
    for service in SERVICES:
        for path in sorted((data_dir / service).glob(KEY_PATTERN)):
            found.append((f"{DATA}/{service}/{path.name}", path))
    return found
