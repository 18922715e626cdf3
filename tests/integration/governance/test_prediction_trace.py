"""Prediction provenance end to end (issue 16): real serving, monitor and governance services on loopback gRPC and
HTTP, the test broker, SQLite (governance's registry faked through its bootstrap seam, serving's artifacts in a
local model directory). A prediction goes through serving on a plan governance approved; `modelyard trace` answers
for it from the monitor's log and governance's records, its signed document verifies offline against the audit
export, a tampered one does not, and an unknown request id is NOT_FOUND / 404 with a clear message."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from modelyard.auth import AuthSettings, Role, TokenGrant
from modelyard.cli.app import app
from modelyard.contracts.governance.v1 import governance_service_pb2 as gpb
from modelyard.contracts.governance.v1 import governance_service_pb2_grpc as gpb_grpc
from modelyard.contracts.inference import grpc_service_pb2_grpc as pb_grpc
from modelyard.governance import bootstrap as governance_bootstrap
from modelyard.governance.testing import InMemoryCatalog, facts, governance_settings
from modelyard.kafka.admin import ensure_topics
from modelyard.monitor import bootstrap as monitor_bootstrap
from modelyard.monitor.config import MonitorSettings
from modelyard.monitor.testing import setting_values
from modelyard.runtime import Service
from modelyard.serving import bootstrap as serving_bootstrap
from modelyard.serving.testing import ModelRepository, breast_cancer, infer_request, service_settings, wait_until
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration
__all__ = ["breast_cancer"]  # a fixture

TOKENS = {
    name: f"{name}-token-0123456789abcdefghij" for name in ("bob", "carol", "dave", "eve", "serving", "governance")
}
ROLES = {
    "bob": Role.PUBLISHER,
    "carol": Role.APPROVER,
    "dave": Role.APPROVER,
    "eve": Role.VIEWER,
    "serving": Role.SERVICE,
    "governance": Role.SERVICE,
}
AUTH = AuthSettings(
    tokens={TOKENS[n]: TokenGrant(principal=n, roles=frozenset({r})) for n, r in ROLES.items()}, allow_anonymous=False
)
MODEL = "breast_cancer"


def auth(name: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {TOKENS[name]}"),)


@dataclass
class Stack:
    governance: Service
    monitor: Service
    serving: Service
    digest: str

    @property
    def governance_address(self) -> str:
        return f"127.0.0.1:{self.governance.grpc.port}"


@pytest.fixture
async def stack(tmp_path: Path, kafka_bootstrap: str, breast_cancer: TrainedModel) -> AsyncIterator[Stack]:
    await ensure_topics(kafka_bootstrap)
    repository = ModelRepository(tmp_path / "serving")
    ref = repository.add(MODEL, 1, breast_cancer.onnx)
    # The background of `trace --explain`: a local model's reference dataset, its columns named by location.
    reference = np.loadtxt(io.BytesIO(breast_cancer.reference_csv), delimiter=",", skiprows=1)[:, :-1]
    header = ",".join(f"X[{j}]" for j in range(reference.shape[1]))
    np.savetxt(repository.models / MODEL / "1" / "reference.csv", reference, delimiter=",", header=header, comments="")
    catalog = InMemoryCatalog()
    catalog.add(facts(MODEL, 1))
    catalog.change_digest(MODEL, 1, ref.digest)
    for name in ("governance", "monitor"):
        (tmp_path / name).mkdir()
    monitor = monitor_bootstrap.service(
        monitor_bootstrap.build(
            MonitorSettings.model_validate(
                {**setting_values(kafka_bootstrap, tmp_path / "monitor"), "auth": AUTH.model_dump()}
            )
        )
    )
    async with monitor.running():
        governance = governance_bootstrap.service(
            governance_bootstrap.build(
                governance_settings(
                    tmp_path / "governance",
                    auth=AUTH,
                    kafka_bootstrap=kafka_bootstrap,
                    work_interval_s=0.05,
                    monitor_address=f"127.0.0.1:{monitor.grpc.port}",
                    monitor_token=TOKENS["governance"],
                ),
                catalog=catalog,
            )
        )
        async with governance.running():
            address = f"127.0.0.1:{governance.grpc.port}"
            await approve_production(address)
            serving = serving_bootstrap.service(
                serving_bootstrap.build(
                    service_settings(
                        repository.root,
                        kafka_bootstrap,
                        plan_source="governance",
                        governance_address=address,
                        governance_token=TOKENS["serving"],
                        stream_enabled=True,
                    )
                )
            )
            async with serving.running():
                await wait_until(lambda: serving.ready)
                yield Stack(governance, monitor, serving, ref.digest)


async def approve_production(address: str) -> None:
    """bob asks to promote v1 to production; carol and dave approve it once its checks passed."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = gpb_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
        request = gpb.RequestPromotionRequest(model_name=MODEL, version=1, target_alias="production")
        request_id = (await stub.RequestPromotion(request, metadata=auth("bob"))).request.request_id
        async with asyncio.timeout(20):
            while (  # noqa: ASYNC110  (state of another service)
                await stub.GetDecision(gpb.GetDecisionRequest(request_id=request_id), metadata=auth("eve"))
            ).request.state == "checking":
                await asyncio.sleep(0.05)
        for approver in ("carol", "dave"):
            await stub.Approve(gpb.ApproveRequest(request_id=request_id), metadata=auth(approver))


async def trace_when_logged(stub: gpb_grpc.GovernanceServiceStub, request_id: str) -> gpb.TracePredictionResponse:
    """The trace, once the monitor has consumed the prediction from the stream (NOT_FOUND until then)."""
    async with asyncio.timeout(60):
        while True:
            try:
                return await stub.TracePrediction(
                    gpb.TracePredictionRequest(request_id=request_id), metadata=auth("eve")
                )
            except grpc.aio.AioRpcError as error:
                if error.code() is not grpc.StatusCode.NOT_FOUND:
                    raise
            await asyncio.sleep(0.1)


async def audit_export(stub: gpb_grpc.GovernanceServiceStub) -> list[str]:
    """The model's audit export, once the signer has recovered from the checkpoints topic (UNAVAILABLE until then)."""
    async with asyncio.timeout(30):
        while True:
            try:
                return list(
                    (await stub.ExportAudit(gpb.ExportAuditRequest(model_name=MODEL), metadata=auth("eve"))).lines
                )
            except grpc.aio.AioRpcError as error:
                if error.code() is not grpc.StatusCode.UNAVAILABLE:
                    raise
            await asyncio.sleep(0.1)


async def cli(*args: str) -> tuple[int, str]:
    """`modelyard ARGS` in a worker thread (the CLI blocks; the services run on this event loop)."""
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args))
    return result.exit_code, result.output


async def test_a_prediction_is_traced_exported_and_verified_offline(
    stack: Stack, breast_cancer: TrainedModel, tmp_path: Path
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.serving.grpc.port}") as channel:
        infer = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        answer = await infer.ModelInfer(
            infer_request(MODEL, breast_cancer.sample[:1], "trace-me-1"), metadata=auth("serving")
        )
    async with grpc.aio.insecure_channel(stack.governance_address) as channel:
        governance = gpb_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
        traced = await trace_when_logged(governance, "trace-me-1")
        plan = (
            await governance.GetDeploymentPlan(gpb.GetDeploymentPlanRequest(model_name=MODEL), metadata=auth("eve"))
        ).plan
        export_lines = await audit_export(governance)

    document = json.loads(traced.document)
    assert (document["model_name"], document["version"], document["artifact_digest"]) == (MODEL, 1, stack.digest)
    assert document["plan_revision"] == plan.revision and document["plan"]["revision"] == plan.revision
    promotion = document["promotion"]
    assert [a["approver"] for a in promotion["approvals"]] == ["carol", "dave"] and promotion["requested_by"] == "bob"
    assert promotion["digest_matches"] and promotion["policy_hash"].startswith("sha256:")
    assert all(check["passed"] for check in promotion["checks"]) and promotion["checks"]
    logged = document["monitor"]["prediction"]
    assert logged["request_id"] == "trace-me-1" and logged["version"]["digest"] == stack.digest
    assert logged["inputs"][0]["values"] == pytest.approx(breast_cancer.sample[0].tolist(), rel=1e-6)
    assert {t["name"] for t in logged["outputs"]} == {o.name for o in answer.outputs}
    assert document["monitor"]["window"]["window_id"]  # the window it fell into (still open: one prediction)
    assert document["monitor"].get("incidents", []) == []
    assert document["key_id"] == traced.key_id and document["audit_entries"]

    async with httpx.AsyncClient() as client:  # the monitor's REST answer for the same prediction
        monitor_rest = await client.get(
            f"http://127.0.0.1:{stack.monitor.http.port}/api/v1/predictions/trace-me-1",
            headers={"authorization": f"Bearer {TOKENS['eve']}"},
        )
    assert monitor_rest.status_code == 200
    rest = monitor_rest.json()
    assert rest["prediction"]["digest"] == stack.digest and rest["prediction"]["plan_revision"] == plan.revision
    assert rest["prediction"]["window"] == document["monitor"]["window"]["window_id"]

    trace_file, export_file = tmp_path / "trace.json", tmp_path / "audit.jsonl"
    code, output = await cli("trace", "trace-me-1", "--export", str(trace_file), "--governance",
                             stack.governance_address, "--token", TOKENS["eve"])  # fmt: skip
    assert code == 0 and "carol" in output and "signed trace" in output
    export_file.write_text("".join(line + "\n" for line in export_lines))
    code, output = await cli("trace", "verify", str(trace_file), "--audit-export", str(export_file))
    assert code == 0 and "trace of trace-me-1 verifies" in output

    tampered = json.loads(trace_file.read_text())
    tampered["promotion"]["approvals"][0]["approver"] = "mallory"
    trace_file.write_text(json.dumps(tampered))
    code, output = await cli("trace", "verify", str(trace_file), "--audit-export", str(export_file))
    assert code == 1 and "does not verify" in output and "changed after it was signed" in output


async def test_an_unknown_request_id_is_not_found_on_every_edge(stack: Stack) -> None:
    async with grpc.aio.insecure_channel(stack.governance_address) as channel:
        governance = gpb_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await governance.TracePrediction(gpb.TracePredictionRequest(request_id="no-such-id"), metadata=auth("eve"))
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND
        assert "no prediction with request id 'no-such-id'" in (raised.value.details() or "")
        for bad in (gpb.TracePredictionRequest(), gpb.TracePredictionRequest(request_id="x" * 200)):
            with pytest.raises(grpc.aio.AioRpcError) as raised:  # the monitor's refusal keeps its meaning
                await governance.TracePrediction(bad, metadata=auth("eve"))
            assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert "request_id is required" in (raised.value.details() or "")
    headers = {"authorization": f"Bearer {TOKENS['eve']}"}
    async with httpx.AsyncClient() as client:
        governance_rest = await client.get(
            f"http://127.0.0.1:{stack.governance.http.port}/v1/predictions/no-such-id/trace", headers=headers
        )
        monitor_rest = await client.get(
            f"http://127.0.0.1:{stack.monitor.http.port}/api/v1/predictions/no-such-id", headers=headers
        )
    assert governance_rest.status_code == 404 and "no prediction with request id" in governance_rest.text
    assert monitor_rest.status_code == 404 and "no prediction with request id" in monitor_rest.text
    code, output = await cli("trace", "no-such-id", "--governance", stack.governance_address, "--token", TOKENS["eve"])
    assert code == 1 and "NOT_FOUND" in output


async def test_a_traced_prediction_is_explained_beside_its_signed_trace(
    stack: Stack, breast_cancer: TrainedModel, tmp_path: Path
) -> None:
    row = breast_cancer.sample[:1]
    serving = f"127.0.0.1:{stack.serving.grpc.port}"
    async with grpc.aio.insecure_channel(serving) as channel:
        infer = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        await infer.ModelInfer(infer_request(MODEL, row, "explain-me-1"), metadata=auth("serving"))
    async with grpc.aio.insecure_channel(stack.governance_address) as channel:
        governance = gpb_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
        await trace_when_logged(governance, "explain-me-1")
        export_lines = await audit_export(governance)
    where = ("--governance", stack.governance_address, "--serving", serving, "--token", TOKENS["eve"])

    trace_file, export_file = tmp_path / "trace.json", tmp_path / "audit.jsonl"
    code, output = await cli("trace", "explain-me-1", "--explain", "--json", "--export", str(trace_file), *where)
    assert code == 0, output
    document = json.loads(trace_file.read_text())
    assert set(document) == {"trace", "explanation"} and document["trace"]["request_id"] == "explain-me-1"
    explanation = document["explanation"]
    logged = document["trace"]["monitor"]["prediction"]["outputs"]
    probabilities = next(o["values"] for o in logged if o["name"] == "probabilities")  # what was served
    assert explanation["signed"] is False and "not evidence" in explanation["note"]
    assert (explanation["model_name"], explanation["model_version"]) == (MODEL, "1")
    assert explanation["feature_values"][0] == f"{row[0, 0]:.4g}" and len(explanation["feature_names"]) == 30
    ((explained,),) = [r["outputs"] for r in explanation["rows"]]  # one row, its predicted class
    assert explained["prediction"] == pytest.approx(max(probabilities), abs=1e-5)
    # Additivity: the attributions of the logged inputs add up to the prediction that was served.
    assert explained["base_value"] + sum(explained["attributions"]) == pytest.approx(max(probabilities), abs=1e-4)
    printed, _ = json.JSONDecoder().raw_decode(output)  # then the line that says where it was written
    assert printed == document  # --json prints what was exported

    export_file.write_text("".join(line + "\n" for line in export_lines))
    code, output = await cli("trace", "verify", str(trace_file), "--audit-export", str(export_file))
    assert code == 0 and "trace of explain-me-1 verifies" in output, output
    assert "explanation beside it is not signed" in output and "not evidence" in output

    code, output = await cli("trace", "explain-me-1", "--explain", *where)
    top = max(range(30), key=lambda j: abs(explained["attributions"][j]))
    assert code == 0 and "top features" in output and "not evidence" in output, output
    assert f"{explanation['feature_names'][top]}" in output and f"{explained['attributions'][top]:+.4f}" in output

    stopped = ("--governance", stack.governance_address, "--serving", "127.0.0.1:1", "--token", TOKENS["eve"])
    code, output = await cli("trace", "explain-me-1", "--explain", "--export", str(tmp_path / "no.json"), *stopped)
    assert code == 1 and "cannot explain breast_cancer v1: serving answered UNAVAILABLE" in output
    assert not (tmp_path / "no.json").exists()  # nothing half-written
