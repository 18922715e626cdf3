"""One service database, snapshotted and restored: SQLite through its online backup API (a consistent copy while
the service writes), PostgreSQL through `pg_dump` / `pg_restore` (custom format, consistent without stopping
anything). The schema revision (Alembic's) is read from the live database for the manifest."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from modelyard.sql.engine import create_engine

DatabaseKind = Literal["sqlite", "postgresql"]
DUMP_SUFFIX = {"sqlite": ".db", "postgresql": ".pgdump"}
PG_TIMEOUT_S = 600


class DatabaseError(Exception):
    """A database that cannot be snapshotted or restored; the message says which and why, without secrets."""


def kind_of(url: str) -> DatabaseKind:
    backend = make_url(url).get_backend_name()
    if backend not in DUMP_SUFFIX:
        raise DatabaseError(f"cannot back up a {backend} database: only SQLite and PostgreSQL")
    return "sqlite" if backend == "sqlite" else "postgresql"


def describe(url: str) -> str:
    """The URL without its password, for messages and the manifest."""
    return make_url(url).render_as_string(hide_password=True)


def schema_revision(url: str) -> str | None:
    """The Alembic revision the database is at (None before its first migration)."""
    if kind_of(url) == "sqlite":
        _existing_sqlite(url)  # connecting would create an empty one
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if "alembic_version" not in sa.inspect(connection).get_table_names():
                return None
            revision = connection.scalar(sa.text("SELECT version_num FROM alembic_version"))
            return None if revision is None else str(revision)
    except sa.exc.OperationalError as exc:
        raise DatabaseError(f"cannot read {describe(url)}: {exc.orig}") from None
    finally:
        engine.dispose()


def snapshot(url: str, target: Path) -> None:
    """Write a consistent snapshot of the database at `url` to the file `target`."""
    if kind_of(url) == "sqlite":
        source = _existing_sqlite(url)
        with closing(sqlite3.connect(source)) as live, closing(sqlite3.connect(target)) as copy:
            live.backup(copy)
        return
    _run_pg(url, "pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={target}")


def restore(url: str, dump: Path) -> None:
    """Load a snapshot into the database at `url`, which must be empty (a SQLite file must not exist yet)."""
    require_empty(url)
    if kind_of(url) == "sqlite":
        target = _sqlite_path(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dump, target)
        return
    _run_pg(url, "pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", str(dump))


def require_empty(url: str) -> None:
    """Raise DatabaseError unless the target is empty: no SQLite file yet, a PostgreSQL database without tables."""
    if kind_of(url) == "sqlite":
        if _sqlite_path(url).exists():
            raise DatabaseError(f"{_sqlite_path(url)} exists: restore only into an empty data dir")
        return
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            tables = sa.inspect(connection).get_table_names()
    except sa.exc.OperationalError as exc:
        raise DatabaseError(f"cannot connect to {describe(url)}: {exc.orig}") from None
    finally:
        engine.dispose()
    if tables:
        raise DatabaseError(f"{describe(url)} has tables: restore only into an empty database")


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise DatabaseError("an in-memory SQLite database has nothing to back up")
    return Path(database)


def _existing_sqlite(url: str) -> Path:
    path = _sqlite_path(url)
    if not path.is_file():
        raise DatabaseError(f"no SQLite database at {path}: has the service run on this data dir?")
    return path


def _run_pg(url: str, tool: str, *args: str) -> None:
    """Run pg_dump or pg_restore on the database at `url` (a SQLAlchemy URL: postgresql+psycopg://...), its
    password in PGPASSWORD rather than on a command line that `ps` shows."""
    if shutil.which(tool) is None:
        raise DatabaseError(f"{tool} is not on PATH: install the PostgreSQL client tools (e.g. postgresql-client)")
    parsed: URL = make_url(url).set(drivername="postgresql")
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    libpq = parsed.set(password=None).render_as_string(hide_password=False)
    argv = [tool, *args, f"--dbname={libpq}"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=PG_TIMEOUT_S, check=False, env=env)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise DatabaseError(f"{tool} failed (exit {result.returncode}): {last}")
