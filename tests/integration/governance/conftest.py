"""Governance on SQLite and on PostgreSQL (127.0.0.1:5432; skipped locally when it is not there, required on CI)."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.governance.bootstrap import GovernanceParts
from modelyard.governance.testing import start_governance
from modelyard.sql.engine import scratch_postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A scratch database URL ("" for SQLite in the test's data dir)."""
    with contextlib.ExitStack() as stack:
        url = ""
        if request.param == "postgres":
            admin_url = request.getfixturevalue("postgres_admin_url")
            url = stack.enter_context(scratch_postgres_database(admin_url, "governance_test")).render_as_string(
                hide_password=False
            )
        yield url


@pytest.fixture
def governance(tmp_path: Path, database_url: str) -> Iterator[GovernanceParts]:
    built = start_governance(tmp_path, database_url)
    yield built
    built.store.engine.dispose()
