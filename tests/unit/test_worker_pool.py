"""`WorkerPool`: jobs run in spawned processes at a lower CPU priority; a worker that dies fails its job with
`WorkerDied` and the next job gets a fresh worker."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from modelyard.worker_pool import WorkerDied, WorkerPool


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    pool = WorkerPool(1, niceness=3)
    yield pool
    pool.close()


def test_jobs_run_in_another_process_at_lower_priority(pool: WorkerPool) -> None:
    worker = pool.call(os.getpid)
    assert worker != os.getpid()
    assert pool.call(os.nice, 0) == os.nice(0) + 3
    assert pool.call(os.getpid) == worker  # the worker is kept between jobs


def test_a_dead_worker_fails_its_job_and_is_replaced(pool: WorkerPool) -> None:
    first = pool.call(os.getpid)
    with pytest.raises(WorkerDied, match="stopped while it ran the job"):
        pool.call(os._exit, 3)
    assert pool.call(os.getpid) not in (first, os.getpid())


async def test_run_waits_without_blocking_and_survives_a_death(pool: WorkerPool) -> None:
    assert await pool.run(os.getpid) != os.getpid()
    with pytest.raises(WorkerDied):
        await pool.run(os._exit, 3)
    assert await pool.run(divmod, 7, 2) == (3, 1)
