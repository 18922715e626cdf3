"""Alembic environment: runs on the connection `modelyard.sql.migrations.upgrade` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from modelyard.registry.adapters.sql.schema import metadata

connection: Connection = context.config.attributes["connection"]
# render_as_batch: SQLite can only ALTER tables by copying them; batch mode does that for later revisions.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
