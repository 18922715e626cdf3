"""Runs a service's Alembic migrations programmatically (no alembic.ini): `upgrade(engine, "pkg:migrations")`."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine


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
