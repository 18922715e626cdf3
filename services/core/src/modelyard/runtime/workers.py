"""The status table of a service's worker processes: how a worker knows whether all its peers are ready.

The supervisor (`modelyard.runtime.supervisor`) gives every worker the same run directory. Each worker writes its
own readiness there after every evaluation (`worker-<index>.json`: ready, failing, degraded, when); the supervisor
writes `supervisor.json` (how many workers, which are down and why, how often each was restarted). Whichever worker
a probe reaches answers ready only when every worker is: a dead, silent, starting or degraded worker shows in
/readyz, the gRPC health service and `modelyard status` of all of them. Files are replaced atomically (written
aside, then renamed), so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import Gauge
from pydantic import BaseModel, Field

from modelyard.runtime.readiness import ReadinessCheck, ReadinessReport

_RESTARTS = Gauge(
    "modelyard_worker_restarts",
    "Worker processes the supervisor restarted since it started",
    ["service"],
    multiprocess_mode="max",
)
SUPERVISOR_FILE = "supervisor.json"
# The checks that read the peers' status: left out of the status a worker publishes of itself.
WORKERS_CHECK, DEGRADED_WORKERS_CHECK = "workers", "workers-degraded"


class WorkerSettings(BaseModel):
    """Set by the supervisor in each worker's environment; never set by hand."""

    model_config = {"frozen": True}

    index: int = Field(ge=0, description="this worker's number, 0 to count - 1")
    count: int = Field(ge=1, description="how many workers the supervisor runs")
    run_dir: Path = Field(description="the supervisor's directory of this start: status table and metrics")

    @property
    def status_dir(self) -> Path:
        return self.run_dir / "status"

    @property
    def metrics_dir(self) -> Path:
        return self.run_dir / "metrics"


def write_json(path: Path, content: dict[str, Any]) -> None:
    """Replace `path` atomically."""
    aside = path.with_name(f".{path.name}.{os.getpid()}")
    aside.write_text(json.dumps(content))
    os.replace(aside, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


@dataclass
class SupervisorView:
    """What the supervisor knows of its workers: which are down (index -> why) and restarts per worker."""

    count: int
    down: dict[int, str] = field(default_factory=dict)
    restarts: dict[int, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "down": self.down, "restarts": self.restarts}

    @classmethod
    def from_json(cls, content: dict[str, Any]) -> SupervisorView:
        return cls(
            int(content["count"]),
            {int(k): str(v) for k, v in content.get("down", {}).items()},
            {int(k): int(v) for k, v in content.get("restarts", {}).items()},
        )


@dataclass(frozen=True)
class PeerProblems:
    not_ready: list[str]  # "worker 1: ..." for every worker that holds readiness back
    degraded: list[str]  # "worker 1: prediction-stream" for every degraded worker


def peer_problems(
    view: SupervisorView, statuses: dict[int, dict[str, Any] | None], now: float, silent_after_s: float
) -> PeerProblems:
    """Why the workers, taken together, are not ready or degraded; `statuses` maps index -> its last status."""
    not_ready, degraded = [], []
    for index in range(view.count):
        status = statuses.get(index)
        if index in view.down:
            not_ready.append(f"worker {index}: {view.down[index]}")
        elif status is None:
            not_ready.append(f"worker {index}: starting")
        elif now - float(status["time"]) > silent_after_s:
            not_ready.append(f"worker {index}: silent for {now - float(status['time']):.0f}s")
        elif not status["ready"]:
            not_ready.append(f"worker {index}: not ready ({', '.join(sorted(status['failing'])) or 'starting'})")
        if status is not None and status.get("degraded"):
            degraded.append(f"worker {index}: {', '.join(sorted(status['degraded']))}")
    return PeerProblems(not_ready, degraded)


class WorkersNotReady(RuntimeError):
    """Some worker holds the service's readiness back; the message says which and why."""


class WorkersDegraded(RuntimeError):
    """Some worker reports a degraded dependency."""


class WorkerTable:
    """One worker's side of the table: publish its own readiness, read everyone's."""

    def __init__(self, service: str, worker: WorkerSettings, silent_after_s: float) -> None:
        self.service = service
        self.worker = worker
        self.silent_after_s = silent_after_s
        worker.status_dir.mkdir(parents=True, exist_ok=True)

    def publish(self, report: ReadinessReport) -> None:
        """This worker's own readiness: the report without its view of the peers."""
        failing = sorted(name for name in report.failing if name != WORKERS_CHECK)
        degraded = sorted(name for name in report.degraded if name != DEGRADED_WORKERS_CHECK)
        content = {"pid": os.getpid(), "ready": not failing, "failing": failing, "degraded": degraded}
        write_json(self.worker.status_dir / f"worker-{self.worker.index}.json", {**content, "time": time.time()})

    def problems(self) -> PeerProblems:
        status_dir = self.worker.status_dir
        supervisor = read_json(status_dir / SUPERVISOR_FILE)
        view = SupervisorView.from_json(supervisor) if supervisor else SupervisorView(self.worker.count)
        _RESTARTS.labels(self.service).set(sum(view.restarts.values()))
        statuses = {i: read_json(status_dir / f"worker-{i}.json") for i in range(view.count)}
        return peer_problems(view, statuses, time.time(), self.silent_after_s)

    def readiness_check(self) -> ReadinessCheck:
        async def workers() -> bool:
            if problems := self.problems().not_ready:
                raise WorkersNotReady("; ".join(problems))
            return True

        return workers

    def degradation_check(self) -> ReadinessCheck:
        async def workers() -> bool:
            if problems := self.problems().degraded:
                raise WorkersDegraded("; ".join(problems))
            return True

        return workers
