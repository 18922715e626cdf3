"""The loop of `modelyard demo`, as a test: the same `run_demo` the command runs (services as processes on free
ports, stock tritonclient in its own process), and every step asserted, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.cli.demo import run_demo
from modelyard.cli.demo_scenario import CANARY_WEIGHT, ROWS_PER_ROUND
from modelyard.cli.demo_timeline import STEPS
from modelyard.cli.stack import SERVICES
from modelyard.cli.up import StackOptions
from modelyard.kafka.embedded import free_port

pytestmark = pytest.mark.e2e


def free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


# Three to six minutes on a busy 2-core machine (starting four services, a canary observed for a minute, a training
# run in a process of its own); the bound is for a stuck run.
@pytest.mark.timeout(900)
def test_register_approve_serve_drift_rollback_retrain_audit(tmp_path: Path) -> None:
    ports = free_ports(1 + 2 * len(SERVICES))
    options = StackOptions(
        data_dir=tmp_path / "demo",
        broker_port=ports.pop(),
        ports=tuple(f"{service}.{kind}={ports.pop()}" for service in SERVICES for kind in ("grpc", "http")),
        timeout=180.0,
    )

    result = run_demo(options)

    assert result.failure is None, str(result.failure)
    assert tuple(result.steps) == STEPS
    traffic = list(result.traffic.items())
    # Before the canary: v1 answers everything.
    assert traffic[0] == ("v1 #0", {"1": ROWS_PER_ROUND})
    # The canary takes its share (the split is a hash of the request ids, which the demo fixes).
    phase, canary = traffic[1]
    assert phase == "canary #1" and set(canary) == {"1", "2"}
    assert abs(canary["2"] / sum(canary.values()) - CANARY_WEIGHT) < 0.1
    # After the rollback, v1 again, and v1 is all serving runs.
    (after_rollback,) = [answers for phase, answers in traffic if phase.startswith("after rollback")]
    assert after_rollback == {"1": ROWS_PER_ROUND}
    assert result.served_versions == ["1"]
    # Retrained on the drifted, labelled traffic, v3 went out as a canary and was promoted: it answers everything.
    assert traffic[-1] == (f"after promotion #{len(traffic) - 1}", {"3": ROWS_PER_ROUND})
    assert any(phase.startswith("canary v3") and set(answers) == {"1", "3"} for phase, answers in traffic)
    # The platform's own record of it: the event the monitor raised, the rollback, the snapshot it suggested
    # retraining on, v3's checks and promotion, realised accuracy recovering, and an intact audit chain.
    described = [entry.what for entry in result.timeline if entry.actor in ("monitor", "governance", "serving")]
    assert any("IncidentChanged" in line and "on v2: data_drift, critical" in line for line in described)
    assert any("RollbackOrdered" in line and "v2" in line for line in described)
    assert any(line.startswith("RetrainingSuggested") for line in described)
    assert any(line.startswith("checks of v3:") and "not_worse passed" in line for line in described)
    assert any("DeploymentApproved" in line and line.endswith("primary v3") for line in described)
    (realised,) = [line for line in described if line.startswith("realised accuracy on the shifted cases")]
    v1, v3 = (float(part.split()[1]) for part in realised.split(": ", 1)[1].split(", "))
    assert v3 > v1
    assert result.audit_entries > 0 and result.audit_checkpoints > 0
    # `modelyard trace --explain` of a prediction before the retrain (served by v1) and of one after (by v3).
    traced = [entry.what for entry in result.timeline if entry.what.startswith("$ modelyard trace:")]
    for version in (1, 3):
        assert any(line.endswith(f"breast-cancer v{version}") for line in traced)  # the trace's model row
        assert any(f"explanation of breast-cancer v{version} (" in line for line in traced)
    assert sum("top features:" in line for line in traced) == sum("not evidence" in line for line in traced) == 2
