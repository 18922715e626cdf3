"""The monitor's Alembic migrations build exactly the schema its queries use (`adapters/schema.py`), on SQLite
and PostgreSQL (must run on CI), and take over a database made by `create_all` before migrations existed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from modelyard.monitor.adapters.prediction_log import tensors_to_bytes
from modelyard.monitor.adapters.schema import metadata, profiles
from modelyard.monitor.adapters.store import MIGRATIONS, SqlMonitorStore
from modelyard.monitor.domain.performance import PendingPrediction
from modelyard.monitor.domain.policy import MonitorPolicy
from modelyard.monitor.domain.profile import Role
from modelyard.monitor.domain.records import TensorRows
from modelyard.sql.engine import create_engine, scratch_postgres_database
from modelyard.sql.migrations import alembic_config

pytestmark = pytest.mark.integration
OLD_LOG_COLUMNS = (  # revision 0003's prediction log
    *("request_id", "model_name", "model_version", "digest", "plan_revision", "event_time", "window_id"),
    *("batch_id", "batch_row", "truth_label", "truth_value", "logged_at"),
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'monitor.db'}"
        if request.param == "postgres":
            admin_url = request.getfixturevalue("postgres_admin_url")
            url = stack.enter_context(scratch_postgres_database(admin_url, "monitor_migrations")).render_as_string(
                hide_password=False
            )
        built = create_engine(url)
        stack.callback(built.dispose)
        yield built


def store(engine: Engine) -> SqlMonitorStore:
    return SqlMonitorStore(engine, MonitorPolicy())


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config(sa.create_engine("sqlite://"), MIGRATIONS)).get_current_head()


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))


def test_migrated_schema_matches_the_metadata(engine: Engine) -> None:
    store(engine).migrate()
    assert current(engine) == head()
    assert schema_diff(engine) == []
    store(engine).migrate()  # every start migrates: a no-op when current
    assert current(engine) == head()


def test_downgrade_to_base_removes_the_schema(engine: Engine) -> None:
    store(engine).migrate()
    config = alembic_config(engine, MIGRATIONS)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    store(engine).migrate()
    assert schema_diff(engine) == []


def test_a_database_made_by_create_all_is_adopted_with_its_rows(engine: Engine) -> None:
    # Before migrations the monitor made revision 0001's schema with create_all: no alembic_version table.
    config = alembic_config(engine, MIGRATIONS)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(sa.text("DROP TABLE alembic_version"))
        connection.execute(
            profiles.insert().values(
                id="p1", model_name="m", model_version=1, active=True, created_at=0.0, data=b"profile"
            )
        )
    store(engine).migrate()
    assert current(engine) == head()
    assert schema_diff(engine) == []
    with engine.connect() as connection:
        assert connection.scalar(sa.select(profiles.c.data).where(profiles.c.id == "p1")) == b"profile"


def test_checkpointed_positions_survive_a_new_store(engine: Engine) -> None:
    store(engine).migrate()
    store(engine).checkpoint({("predictions", 0): 7, ("predictions", 1): 3}, [], "sha256:0")
    store(engine).checkpoint({("predictions", 0): 12}, [], "sha256:0")
    assert store(engine).positions() == {("predictions", 0): 12, ("predictions", 1): 3}


def test_predictions_waiting_per_row_move_to_blocks_and_still_join(engine: Engine) -> None:
    config = alembic_config(engine, MIGRATIONS)
    old = sa.table("pending_predictions", *(sa.column(c) for c in ("request_id", "model_name", "model_version",
        "event_time", "label", "score", "value", "features", "stored_at")))  # fmt: skip
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        connection.execute(
            old.insert(),
            [
                {"request_id": "r1", "model_name": "m", "model_version": 1, "event_time": 10.0, "label": "1",
                 "score": 0.8, "value": None, "features": None, "stored_at": 5.0},
                {"request_id": "r2", "model_name": "m", "model_version": 1, "event_time": 11.0, "label": None,
                 "score": None, "value": 2.5, "features": None, "stored_at": 6.0},
            ],
        )  # fmt: skip
    store(engine).migrate()
    assert schema_diff(engine) == []
    found = store(engine).pending_predictions(["r1", "r2", "r3"])
    assert found == {
        "r1": PendingPrediction("r1", "m", 1, 10.0, "1", 0.8, None, None),
        "r2": PendingPrediction("r2", "m", 1, 11.0, None, None, 2.5, None),
    }


def test_logged_predictions_move_to_integer_keys_and_back_with_their_labels(engine: Engine) -> None:
    config = alembic_config(engine, MIGRATIONS)
    tensors = tensors_to_bytes({(Role.INPUT, "x"): TensorRows(np.array([1.0, 2.0, 3.0]), np.ones(3, np.int64))})
    old_log = sa.table("prediction_log", *(sa.column(c) for c in OLD_LOG_COLUMNS))
    old_rows = [  # batch 5's record 1 had no request id: no entry
        ("a", "m", 1, "sha256:ab", 7, 100.0, "1.0", 5, 0, "yes", None, 50.0),
        ("b", "m", 1, "sha256:ab", 7, 101.0, "", 5, 2, None, None, 50.0),
        ("c", "n", 2, "sha256:cd", 8, 102.0, "1.1", 6, 0, None, 2.5, 60.0),
    ]
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        blocks = sa.table("prediction_log_tensors", sa.column("id"), sa.column("data"))
        connection.execute(blocks.insert(), [{"id": 5, "data": tensors}, {"id": 6, "data": tensors}])
        connection.execute(old_log.insert(), [dict(zip(OLD_LOG_COLUMNS, row, strict=True)) for row in old_rows])
    store(engine).migrate()
    assert schema_diff(engine) == []
    traced = {rid: store(engine).prediction_trace(rid) for rid in "abc"}
    moved = [
        (p.request_id, p.model_name, p.model_version, p.digest, p.plan_revision, p.event_time, p.window, p.truth)
        for p in (t.prediction for t in traced.values() if t is not None)
    ]
    assert moved == [
        ("a", "m", 1, "sha256:ab", 7, 100.0, "1.0", "yes"),
        ("b", "m", 1, "sha256:ab", 7, 101.0, "", None),
        ("c", "n", 2, "sha256:cd", 8, 102.0, "1.1", 2.5),
    ]
    assert [t.prediction.inputs for t in traced.values() if t is not None] == [{"x": [1.0]}, {"x": [3.0]}, {"x": [1.0]}]
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
        back = sorted(connection.execute(sa.select(old_log)).all())
        renumbered = [(*row[:7], *row[8:]) for row in old_rows]  # the batches' ids are renumbered on the way
        assert [(*row[:7], *row[8:]) for row in back] == renumbered and back[0][7] == back[1][7] != back[2][7]
        assert connection.scalar(sa.select(sa.func.count()).select_from(blocks)) == 2
