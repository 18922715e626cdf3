"""One engine factory for SQLite (the embedded default) and PostgreSQL (production).

SQLite needs help to behave like a database under concurrency: pysqlite's own transaction handling starts
transactions lazily and cannot upgrade a reader to a writer without SQLITE_BUSY, so we take over BEGIN and let a
writer ask for `BEGIN IMMEDIATE` (the write lock up front) through the `write` execution option.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from modelyard.runtime import Hook, ReadinessCheck

SQLITE_BUSY_TIMEOUT_MS = 30_000


def database_ready(engine: Engine) -> ReadinessCheck:
    """A readiness check: the database answers `SELECT 1` (asked in a worker thread)."""

    def select_one() -> bool:
        with engine.connect() as connection:
            return bool(connection.scalar(sa.text("SELECT 1")) == 1)

    async def ready() -> bool:
        return await asyncio.to_thread(select_one)

    return ready


def disposal(engine: Engine) -> Hook:
    """A stop hook: close the engine's pooled connections."""

    async def dispose() -> None:
        engine.dispose()

    return dispose


def create_engine(url: str | URL, **options: Any) -> Engine:
    """An engine for `url`: SQLite files get WAL, foreign keys, a busy timeout and explicit BEGINs."""
    url = make_url(url)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, **options)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False}, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get("write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """A connection in a transaction, committed on success and rolled back on any exception.

    `write=True` takes SQLite's write lock at BEGIN, so concurrent writers queue instead of failing; on
    PostgreSQL it changes nothing (row locks do that job).
    """
    with engine.connect() as connection:
        connection = connection.execution_options(write=write)
        with connection.begin():
            yield connection


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored with its time zone and always read back as aware UTC (SQLite forgets the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@contextmanager
def scratch_postgres_database(admin_url: str | URL, prefix: str = "modelyard") -> Iterator[URL]:
    """A fresh, uniquely named PostgreSQL database for the duration of the block (tests, benchmarks)."""
    admin_url = make_url(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield admin_url.set(database=name)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
