"""The retraining loop end to end, on the demo's stack (services as processes, the CLI as a process): drifted,
labelled traffic on v1 opens a drift incident; the monitor registers a snapshot of the labelled traffic and
publishes `RetrainingSuggested`; `modelyard retrain` with a failing script and with one that returns no ONNX model
registers nothing; with the demo's script it registers v2 with its lineage, and governance checks it (v2 not worse
than the serving v1 on held-out snapshot rows), approves it with two approvers and deploys it."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from rich.console import Console

from modelyard.cli.demo import prepare_demo
from modelyard.cli.demo_data import load_data, train
from modelyard.cli.demo_retrain import Retraining
from modelyard.cli.demo_scenario import MODEL, Scenario, _is
from modelyard.cli.demo_timeline import Timeline
from modelyard.cli.stack import SERVICES, StackState
from modelyard.cli.up import StackOptions, running_stack
from modelyard.contracts.governance.v1 import governance_service_pb2 as gov
from modelyard.contracts.registry.v1 import registry_service_pb2 as reg
from modelyard.testing.stack import distinct_free_ports

pytestmark = pytest.mark.e2e


async def versions(s: Scenario) -> list[int]:
    listed = await s.registry.ListModelVersions(
        reg.ListModelVersionsRequest(model_name=MODEL), metadata=s.auth("alice")
    )
    return sorted(v.version for v in listed.model_versions)


async def loop(state: StackState, work: Path, tokens: dict[str, str]) -> None:
    s = Scenario(state, work, tokens, Timeline(Console(file=io.StringIO())))
    async with s.connected():
        data = await asyncio.to_thread(load_data)
        await s.serve(data, await asyncio.to_thread(train, data, 1.0), 1)
        retraining = Retraining(s, data)
        suggested = asyncio.create_task(s.log.wait_for(lambda p: _is(p, "RetrainingSuggested")))
        async with asyncio.timeout(300):
            while not suggested.done():  # drifted rounds, labelled, until a drift incident has its snapshot
                assert await retraining.labelled("drifted") == {"1": 300}
            event = await suggested
        assert event.version.version == 1 and event.rows >= 500 and event.label_column == "target"
        assert list(event.columns)[-4:] == ["target", "prediction", "model_version", "event_time"] and event.windows

        failing = work / "failing.py"
        failing.write_text(
            "def train(datasets, params):\n    print('fitting', [d.name for d in datasets])\n    1 / 0\n"
        )
        status, output = await retraining.run_retrain(failing)
        assert status == 1 and "fitting ['reference', 'snapshot']" in output and "ZeroDivisionError" in output
        assert "nothing was registered" in output and await versions(s) == [1]
        not_onnx = work / "not_onnx.py"
        not_onnx.write_text("def train(datasets, params):\n    return b'\\x00not a model'\n")
        status, output = await retraining.run_retrain(not_onnx)
        assert status == 1 and "not an ONNX model" in output and await versions(s) == [1]

        await retraining.retrain()
        assert await versions(s) == [1, 2]
        v2 = (
            await s.registry.GetModelVersion(
                reg.GetModelVersionRequest(model_name=MODEL, version=2), metadata=s.auth("alice")
            )
        ).model_version
        assert v2.tags["parent_version"] == "1" and v2.tags["retrained_from_snapshot"].startswith("sha256:")
        assert len(v2.lineage.training_datasets) == 2 and len(v2.lineage.evaluation_datasets) == 1
        assert v2.lineage.parameters["C"] == "1.0" and v2.lineage.metrics["accuracy"] > 0.5
        # The whole snapshot is its reference (the traffic it is meant for); it trained on the snapshot's training part.
        assert v2.reference_dataset_digest == v2.tags["retrained_from_snapshot"]
        assert v2.lineage.training_datasets[1] != v2.reference_dataset_digest

        requested = await s.log.wait_for(lambda p: _is(p, "PromotionRequested") and p.version.version == 2)
        await s.checks_passed(requested.request_id)
        decision = await s.governance.GetDecision(
            gov.GetDecisionRequest(request_id=requested.request_id), metadata=s.auth("carol")
        )
        (not_worse,) = [c for c in decision.request.checks if c.name == "not_worse"]
        assert not_worse.passed and "against v1's" in not_worse.detail
        await s.approve(requested.request_id, canary=2)
        await s.loaded(2)


@pytest.mark.timeout(900)
def test_incident_snapshot_retrain_and_promotion(tmp_path: Path) -> None:
    ports = distinct_free_ports(1 + 2 * len(SERVICES))
    options = StackOptions(
        data_dir=tmp_path / "stack",
        broker_port=ports.pop(),
        ports=tuple(f"{service}.{kind}={ports.pop()}" for service in SERVICES for kind in ("grpc", "http")),
        timeout=180.0,
    )
    options, work, tokens = prepare_demo(options)
    with running_stack(options) as stack:
        asyncio.run(loop(stack.state, work, tokens))
