"""The demo's last act: after the rollback, the improvement loop closes.

The application learns the true diagnoses of the shifted cases and sends them to the monitor as feedback; the
drift incident that is open asks for retraining (the demo's monitor has `retrain_on=["data_drift"]`), so the
monitor registers a snapshot of the labelled traffic and says so (`RetrainingSuggested`). Alice runs
`modelyard retrain` with the demo's training script (`demo_train.py`): v3, trained on the reference and the
snapshot, is registered with its lineage and its promotion requested; governance's checks (among them `not_worse`:
v3 against the serving v1 on held-out snapshot rows) pass, carol and dave approve, v3 goes out as a canary and is
promoted once its observation ends without an incident. Carol traces one prediction before the retrain (served by
v1) and one after (by v3), each with its explanation (`modelyard trace ID --explain`). The realised accuracy on
the new data, from the labels the monitor joined, shows v1's and v3's.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from modelyard.cli import demo_train
from modelyard.cli.demo_data import SEED, DemoData
from modelyard.cli.demo_scenario import MODEL, ROWS_PER_ROUND, _is

if TYPE_CHECKING:
    from modelyard.cli.demo_scenario import Scenario

DEADLINE_LABELS = 120.0
DEADLINE_SNAPSHOT = 120.0
DEADLINE_RETRAIN = 300.0
DEADLINE_CHECKS = 180.0
DEADLINE_DECISION = 90.0
DEADLINE_LOAD = 120.0
DEADLINE_PROMOTION = 300.0  # the canary's observation (the demo policy's observation_s) and then some
DEADLINE_TRACE = 180.0  # serving's first explanation starts a worker (shap's import, numba's compilation)
LABELLED_ROUNDS = 2


class Retraining:
    def __init__(self, scenario: Scenario, data: DemoData) -> None:
        self.s = scenario
        self.data = data
        monitor = scenario.state.services["monitor"].http
        tls = scenario.state.client_tls
        self.monitor = httpx.AsyncClient(base_url=monitor, verify=tls.ssl_context() if tls else True, timeout=30)
        self.round = 0
        self.last_tag = ""  # of the last labelled round: its request ids are `<tag>-<row>`

    async def run(self) -> None:
        s = self.s
        try:
            await s.step("labelled drifted traffic sent to v1", DEADLINE_LABELS, self.labelled_rounds())
            await s.step("traced a v1 prediction, with its explanation", DEADLINE_TRACE, self.trace(1))
            suggested = await s.step(
                "monitor suggested retraining", DEADLINE_SNAPSHOT, s.log.wait_for(_retraining_suggested)
            )
            s.timeline.add(
                "monitor",
                f"snapshot {suggested.dataset_digest[:19]}…: {suggested.rows} labelled predictions from "
                f"{len(suggested.windows)} window(s), registered in the registry",
            )
            await s.step("retrained v3 on the drifted traffic", DEADLINE_RETRAIN, self.retrain())
            requested = await s.step(
                "checks of v3 passed",
                DEADLINE_CHECKS,
                s.log.wait_for(lambda p: _is(p, "PromotionRequested") and p.version.version == 3),
                part=True,
            )
            await s.step("checks of v3 passed", DEADLINE_CHECKS, s.checks_passed(requested.request_id))
            await self.show_comparison(requested.request_id)
            await s.step("v3 approved as a 20% canary", DEADLINE_DECISION, s.approve(requested.request_id, canary=3))
            await s.step("serving loaded v3 as canary", DEADLINE_LOAD, s.loaded(3))
            await s.step("v3 promoted after its canary", DEADLINE_PROMOTION, self.canary_until_promoted())
            traffic = await s.step("traffic answered by v3", DEADLINE_LABELS, self.labelled("after promotion"))
            s.expect("traffic answered by v3", traffic == {"3": ROWS_PER_ROUND}, f"answers by version {traffic}")
            await s.step("traced a v3 prediction, with its explanation", DEADLINE_TRACE, self.trace(3))
            await s.step("realised accuracy recovered", DEADLINE_LABELS, self.accuracy_recovered())
        finally:
            await self.monitor.aclose()

    async def labelled_rounds(self) -> None:
        for _ in range(LABELLED_ROUNDS):
            versions = await self.labelled("labelled")
            if versions != {"1": ROWS_PER_ROUND}:
                raise RuntimeError(f"answers by version {versions}, expected v1 only")

    async def labelled(self, phase: str) -> dict[str, int]:
        """A round of shifted traffic, then (once the monitor has its predictions) the true diagnoses."""
        x, y = self.data.labelled_traffic(ROWS_PER_ROUND, SEED + 200 + self.round, shifted=True)
        self.round += 1
        tag = self.last_tag = self.s.traffic_tag(phase)
        before = await self.records_seen()
        versions = await self.s.traffic(phase, x)
        # A label that arrives before its prediction is counted, not joined: wait until the monitor has them all.
        while await self.records_seen() < before + len(x):  # noqa: ASYNC110  (polling another process's API)
            await asyncio.sleep(0.2)
        labels = [
            {"request_id": f"{tag}-{i}", "model_name": MODEL, "label": str(int(truth))} for i, truth in enumerate(y)
        ]
        answer = await self.monitor.post("/api/v1/feedback/batch", json={"labels": labels})
        if answer.status_code != 202:
            raise RuntimeError(f"feedback refused: HTTP {answer.status_code} {answer.text[:200]}")
        self.s.timeline.add("clinic app", f"{len(labels)} diagnoses of the {phase} cases sent as feedback")
        return versions

    async def retrain(self) -> None:
        """`modelyard retrain` with the demo's training script, as alice."""
        status, output = await self.run_retrain(Path(demo_train.__file__))
        self.show("alice", "retrain", output)
        if status != 0:
            raise RuntimeError(f"modelyard retrain exited with {status}")

    async def run_retrain(self, script: Path) -> tuple[int, str]:
        """`modelyard retrain MODEL --script SCRIPT` as alice: exit status and output."""
        services = self.s.state.services
        return await self.run_cli(
            "retrain", MODEL, "--script", str(script), "--param", "C=1.0",
            "--registry", services["registry"].grpc, "--governance", services["governance"].grpc,
            "--monitor", services["monitor"].http, "--token", self.s.tokens["alice"],
        )  # fmt: skip

    async def trace(self, version: int) -> None:
        """`modelyard trace ID --explain` as carol, for the first request of the last labelled round."""
        services = self.s.state.services
        status, output = await self.run_cli(
            "trace", f"{self.last_tag}-0", "--explain", "--governance", services["governance"].grpc,
            "--serving", services["serving"].grpc, "--token", self.s.tokens["carol"],
        )  # fmt: skip
        self.show("carol", "trace", output)
        if status != 0:
            raise RuntimeError(f"modelyard trace exited with {status}")
        if f"{MODEL} v{version}" not in output or "top features" not in output:
            raise RuntimeError(f"the trace names no explained prediction of v{version}")

    def show(self, who: str, command: str, output: str) -> None:
        for line in output.splitlines():
            if line.strip() and "━" not in line:  # the progress bars' last frames say nothing here
                self.s.timeline.add(who, f"$ modelyard {command}: {line.strip()}")

    async def run_cli(self, *args: str) -> tuple[int, str]:
        """`modelyard ARGS` in a process of its own, with the stack's TLS: exit status and output."""
        tls = self.s.state.tls
        flags = ("--ca-file", "--client-cert", "--client-key")
        options = (
            [
                o
                for flag, f in zip(flags, (tls.ca_file, tls.cert_file, tls.key_file), strict=True)
                for o in (flag, str(f))
            ]
            if tls
            else []
        )
        command = [sys.executable, "-m", "modelyard.cli", *options, *args]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=_plain_env()
        )
        try:
            output, _ = await process.communicate()
        except asyncio.CancelledError:
            process.kill()
            await process.wait()
            raise
        return int(process.returncode or 0), output.decode()

    async def show_comparison(self, request_id: str) -> None:
        from modelyard.contracts.governance.v1 import governance_service_pb2 as gov

        get = gov.GetDecisionRequest(request_id=request_id)
        decision = await self.s.governance.GetDecision(get, metadata=self.s.auth("carol"))
        for check in decision.request.checks:
            if check.name == "not_worse":
                self.s.timeline.add("governance", f"not_worse: {check.detail}")

    async def canary_until_promoted(self) -> None:
        """Labelled rounds through the canary until governance gives v3 all traffic."""
        promoted = asyncio.create_task(
            self.s.log.wait_for(lambda p: _is(p, "DeploymentApproved") and p.plan.primary.version == 3)
        )
        try:
            while not promoted.done():
                await self.labelled("canary v3")
            await promoted
        finally:
            promoted.cancel()

    async def accuracy_recovered(self) -> None:
        v1, v3 = await self.realised_accuracy(1), await self.realised_accuracy(3)
        self.s.timeline.add(
            "monitor",
            f"realised accuracy on the shifted cases: v1 {v1[0]:.3f} ({v1[1]} labels), v3 {v3[0]:.3f} ({v3[1]} labels)",
        )
        if not v3[0] > v1[0]:
            raise RuntimeError(f"v3's realised accuracy {v3[0]:.3f} is not above v1's {v1[0]:.3f}")

    async def realised_accuracy(self, version: int) -> tuple[float, int]:
        """Accuracy over every labelled window slot of `version`, weighted by labels, once the labels are in."""
        path = f"/api/v1/models/{MODEL}/versions/{version}/performance"
        while True:
            history = _json(await self.monitor.get(path))
            windows = [w for w in history["windows"] if "accuracy" in w["metrics"]]
            labelled = sum(w["labelled"] for w in windows)
            if labelled:
                right = sum(w["metrics"]["accuracy"] * w["labelled"] for w in windows)
                return right / labelled, labelled
            await asyncio.sleep(0.2)

    async def records_seen(self) -> int:
        answer = await self.monitor.get("/api/v1/status", params={"model_name": MODEL})
        return sum(int(v["records_seen"]) for v in _json(answer))


def _json(response: httpx.Response) -> Any:
    if response.status_code != 200:
        raise RuntimeError(f"monitor: HTTP {response.status_code} for {response.url.path}: {response.text[:200]}")
    return response.json()


def _retraining_suggested(p: Any) -> bool:
    return bool(_is(p, "RetrainingSuggested") and p.version.model_name == MODEL)


def _plain_env() -> dict[str, str]:
    """The CLI's environment without a MODELYARD_TOKEN of the caller's (the demo passes alice's explicitly), its
    lines as wide as the timeline's."""
    import os

    return {k: v for k, v in os.environ.items() if k != "MODELYARD_TOKEN"} | {"COLUMNS": "200"}
