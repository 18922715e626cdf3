"""How many worker processes serving runs by default, and what a worker calls itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelyard.runtime.workers import WorkerSettings
from modelyard.serving.__main__ import worker_count
from modelyard.serving.config import ServingSettings, usable_cores

pytestmark = pytest.mark.unit

AFFINITY = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", AFFINITY),
        ("100000 100000\n", 1),
        ("150000 100000\n", min(2, AFFINITY)),  # a part of a core counts as one
        ("5000 100000\n", 1),
        ("6400000 100000\n", AFFINITY),  # a quota above the cores this process may use
        ("garbage", AFFINITY),
    ],
)
def test_the_default_is_the_affinity_capped_by_the_cgroup_quota(tmp_path: Path, cpu_max: str, expected: int) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    assert usable_cores(path) == expected
    assert usable_cores(tmp_path / "absent") == AFFINITY


def test_a_worker_is_a_replica_of_its_own_and_never_supervises(tmp_path: Path) -> None:
    plain = ServingSettings(replica="pod-a", workers=4)
    worker = ServingSettings(replica="pod-a", workers=4, worker=WorkerSettings(index=3, count=4, run_dir=tmp_path))
    assert (plain.worker_replica, worker.worker_replica) == ("pod-a", "pod-a-w3")
    assert (worker_count(plain), worker_count(worker)) == (4, 1)
    with pytest.raises(ValueError, match="workers"):
        ServingSettings(workers=0)
