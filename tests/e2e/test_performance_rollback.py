"""Performance decay end to end, on the demo's stack (services as processes): v2, registered with a reference that
carries its answers and the truth (so the monitor has a baseline), goes out as a canary; predictions go through
serving (stock tritonclient), the labels through the bulk feedback API (`POST /api/v1/feedback/batch`). The label
rule has changed (concept drift, no covariate shift): the monitor opens a critical performance incident on v2,
signed, and governance rolls the canary back to v1."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from rich.console import Console

from modelyard.cli.demo import prepare_demo
from modelyard.cli.demo_data import LABEL_COLUMN, DemoData, TrainedVersion, load_data, train
from modelyard.cli.demo_scenario import MODEL, ROWS_PER_ROUND, Scenario, _is
from modelyard.cli.demo_timeline import Timeline
from modelyard.cli.stack import StackState
from modelyard.cli.up import StackOptions, running_stack
from modelyard.contracts.events.v1 import monitor_events_pb2 as mon
from modelyard.testing.stack import planned_ports

pytestmark = pytest.mark.e2e


def reference_with_answers(data: DemoData, model: TrainedVersion) -> bytes:
    """The held-out rows with the model's answers (`output:`) and the truth (`truth:`): the baseline's source."""
    session = ort.InferenceSession(model.onnx, providers=["CPUExecutionProvider"])
    label, probabilities = session.run(None, {"X": data.x_test.astype(np.float32)})
    header = [*(f'"{f}"' for f in data.feature_names), LABEL_COLUMN, "output:label", "output:probabilities[1]"]
    lines = [",".join([*header, "truth:label"])]
    for row, truth, answer, p in zip(data.x_test, data.y_test, label, probabilities[:, 1], strict=True):
        lines.append(",".join([*(f"{v:.6g}" for v in row), str(truth), str(answer), f"{p:.6g}", str(truth)]))
    return ("\n".join(lines) + "\n").encode()


async def records_seen(monitor: httpx.AsyncClient) -> int:
    answer = await monitor.get("/api/v1/status", params={"model_name": MODEL})
    assert answer.status_code == 200, answer.text
    return sum(int(v["records_seen"]) for v in answer.json())


def critical_performance_on_v2(p: Any) -> bool:
    return bool(
        _is(p, "IncidentChanged")
        and p.version.version == 2
        and p.signal == mon.SIGNAL_PERFORMANCE
        and p.severity == mon.SEVERITY_CRITICAL
    )


async def loop(state: StackState, work: Path, tokens: dict[str, str]) -> None:
    s = Scenario(state, work, tokens, Timeline(Console(file=io.StringIO())))
    async with s.connected(), httpx.AsyncClient(base_url=state.services["monitor"].http, timeout=30) as monitor:
        data = await asyncio.to_thread(load_data)
        v1, v2 = await asyncio.to_thread(lambda: (train(data, 1.0), train(data, 0.05)))
        await s.serve(data, v1, 1)
        await s.register(data, v2, 2, reference_csv=await asyncio.to_thread(reference_with_answers, data, v2))
        request_id = await s.request_promotion(2)
        await s.checks_passed(request_id)
        await s.approve(request_id, canary=2)
        await s.loaded(2)

        incident = asyncio.create_task(s.log.wait_for(critical_performance_on_v2))
        rollback = asyncio.create_task(s.log.wait_for(Scenario._rollback_of_v2))
        async with asyncio.timeout(300):
            round_ = 0
            while not incident.done():
                x, y = data.labelled_traffic(ROWS_PER_ROUND, 1000 + round_, shifted=False)
                tag = s.traffic_tag("concept")
                before = await records_seen(monitor)
                assert set(await s.traffic("concept", x)) == {"1", "2"}
                while await records_seen(monitor) < before + len(x):  # noqa: ASYNC110  (another process's API)
                    await asyncio.sleep(0.2)
                # The label rule changed: every answer that used to be right is now wrong.
                labels = [
                    {"request_id": f"{tag}-{i}", "model_name": MODEL, "label": str(1 - int(truth))}
                    for i, truth in enumerate(y)
                ]
                answer = await monitor.post("/api/v1/feedback/batch", json={"labels": labels})
                assert answer.status_code == 202, answer.text
                round_ += 1
                await asyncio.wait({incident}, timeout=5)
            opened = await incident
            rolled_back = await rollback
        assert opened.state in (mon.IncidentChanged.STATE_OPENED, mon.IncidentChanged.STATE_UPDATED)
        assert {e.feature for e in opened.evidence} == {"accuracy"}
        assert rolled_back.incident_id == opened.incident_id and "performance" in rolled_back.reason
        await s.unloaded(2)
        assert await s.served_versions() == ["1"]


@pytest.mark.timeout(600)
def test_labels_in_bulk_open_a_critical_performance_incident_that_rolls_back(tmp_path: Path) -> None:
    broker_port, ports = planned_ports()
    planned = tuple(f"{service}.{kind}={port}" for service, kinds in ports.items() for kind, port in kinds.items())
    options = StackOptions(
        data_dir=tmp_path / "stack",
        broker_port=broker_port,
        ports=planned,
        timeout=180.0,
        env=("monitor.performance_window_labels=50",),  # small label windows: the incident comes sooner
    )
    options, work, tokens = prepare_demo(options)
    with running_stack(options) as stack:
        asyncio.run(loop(stack.state, work, tokens))
