"""Alembic environment: runs on the connection `modelyard.sql.migrations.upgrade` hands over."""

from modelyard.governance.adapters.sql.schema import metadata
from modelyard.sql.migrations import run_migrations

run_migrations(metadata)
