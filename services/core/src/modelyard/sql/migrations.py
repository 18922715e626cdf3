"""Runs a service's Alembic migrations programmatically (no alembic.ini): `upgrade(engine, "pkg:migrations")`.

A service's migrations/env.py is `run_migrations(metadata)` with its schema's metadata; `upgrade` hands the
connection over in `config.attributes["connection"]`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from modelyard.sql.engine import UTCDateTime


def outbox_columns() -> list[sa.Column[object]]:
    """The columns of `modelyard.sql.outbox.outbox_table`, as a migration creates them (each call makes new ones: a
    column belongs to one table). The constraints are the migration's own, named as its schema names them."""
    return [
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("event_key", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("event_time", UTCDateTime(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("trace", sa.Text(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
    ]


def alembic_config(engine: Engine, script_location: str) -> Config:
    """An Alembic config whose env.py finds the engine to run on in `config.attributes["connection"]`."""
    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine, script_location: str, revision: str = "head") -> None:
    """Migrate the database behind `engine` to `revision`; safe to call on every start (no-op when current)."""
    config = alembic_config(engine, script_location)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def stamp_unversioned(engine: Engine, script_location: str, revision: str, existing_table: str) -> bool:
    """Record a database whose schema predates migrations (made by `metadata.create_all`: `existing_table` is
    there, Alembic's version table is not) as being at `revision`, so `upgrade` does not create it again.
    Returns whether it stamped. `revision` must create exactly the schema that create_all made."""
    config = alembic_config(engine, script_location)
    with engine.begin() as connection:
        tables = set(sa.inspect(connection).get_table_names())
        if existing_table not in tables or "alembic_version" in tables:
            return False
        config.attributes["connection"] = connection
        command.stamp(config, revision)
        return True


def run_migrations(metadata: sa.MetaData) -> None:
    """The body of a service's Alembic env.py: run the migrations on the connection `upgrade` handed over."""
    connection: Connection = context.config.attributes["connection"]
    # render_as_batch: SQLite can only ALTER tables by copying them; batch mode does that for later revisions.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
