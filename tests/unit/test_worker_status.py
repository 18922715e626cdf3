"""The worker status table: whichever worker a probe reaches answers for all of them (issue 18)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from modelyard.runtime.readiness import ReadinessReport
from modelyard.runtime.workers import (
    SUPERVISOR_FILE,
    WORKERS_CHECK,
    SupervisorView,
    WorkerSettings,
    WorkersNotReady,
    WorkerTable,
    peer_problems,
    write_json,
)

pytestmark = pytest.mark.unit

NOW = 1000.0


def status(
    ready: bool = True, age_s: float = 0.0, failing: list[str] | None = None, degraded: list[str] | None = None
) -> dict[str, object]:
    return {"ready": ready, "failing": failing or [], "degraded": degraded or [], "time": NOW - age_s}


def test_all_workers_ready_and_fresh_is_ready() -> None:
    problems = peer_problems(SupervisorView(2), {0: status(), 1: status(age_s=3)}, NOW, silent_after_s=15)
    assert problems.not_ready == [] and problems.degraded == []


def test_each_way_a_worker_holds_readiness_back_is_named() -> None:
    view = SupervisorView(5, down={1: "exited with code -9, restarting in 1s"})
    statuses = {
        0: status(ready=False, failing=["planned-models"]),
        1: status(),  # a stale file of the dead worker: the supervisor's word wins
        2: None,
        3: status(age_s=20),
        4: status(degraded=["prediction-stream"]),
    }
    problems = peer_problems(view, statuses, NOW, silent_after_s=15)
    assert problems.not_ready == [
        "worker 0: not ready (planned-models)",
        "worker 1: exited with code -9, restarting in 1s",
        "worker 2: starting",
        "worker 3: silent for 20s",
    ]
    assert problems.degraded == ["worker 4: prediction-stream"]


def test_a_worker_publishes_its_own_readiness_not_its_view_of_the_peers(tmp_path: Path) -> None:
    """Otherwise two starting workers would each wait for the other forever."""
    first = WorkerTable("serving", WorkerSettings(index=0, count=2, run_dir=tmp_path), silent_after_s=15)
    second = WorkerTable("serving", WorkerSettings(index=1, count=2, run_dir=tmp_path), silent_after_s=15)
    waiting_for_peers = ReadinessReport(False, {WORKERS_CHECK: "worker 1: starting"}, checked_at=time.time())
    first.publish(waiting_for_peers)
    assert second.problems().not_ready == ["worker 1: starting"]
    second.publish(ReadinessReport(False, {"planned-models": "check returned false"}))
    assert second.problems().not_ready == ["worker 1: not ready (planned-models)"]
    second.publish(ReadinessReport(True))
    assert asyncio.run(first.readiness_check()()) is True


def test_the_supervisors_word_on_a_dead_worker_fails_the_check(tmp_path: Path) -> None:
    worker = WorkerSettings(index=0, count=2, run_dir=tmp_path)
    table = WorkerTable("serving", worker, silent_after_s=15)
    table.publish(ReadinessReport(True))
    WorkerTable("serving", WorkerSettings(index=1, count=2, run_dir=tmp_path), 15).publish(ReadinessReport(True))
    write_json(worker.status_dir / SUPERVISOR_FILE, SupervisorView(2, down={1: "exited with code 1"}).as_json())
    with pytest.raises(WorkersNotReady, match="worker 1: exited with code 1"):
        asyncio.run(table.readiness_check()())


def test_modelyard_status_names_the_worker_and_why() -> None:
    from modelyard.cli.status import _checks

    failing = {"workers": "WorkersNotReady: worker 1: exited with code -9, restarting in 1s", "planned-models": "x"}
    assert _checks(failing) == "workers (worker 1: exited with code -9, restarting in 1s), planned-models"
