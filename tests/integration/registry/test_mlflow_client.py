"""The stock MLflow client (pinned in the dev dependencies, unmodified) against Modelyard: train ->
`mlflow.onnx.log_model` (an MLflow 3 logged model) -> `register_model("runs:/...")` -> promote through governance ->
serve, with real registry, governance and serving services, the test broker and a
real skl2onnx model; and MLflow's error shape for what Modelyard refuses or does not support."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import mlflow
import mlflow.onnx
import numpy as np
import onnx
import pytest
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException

from modelyard.auth import AuthSettings, Role, TokenGrant
from modelyard.contracts.governance.v1 import governance_service_pb2 as gpb
from modelyard.contracts.governance.v1 import governance_service_pb2_grpc as gpb_grpc
from modelyard.contracts.inference import grpc_service_pb2_grpc as inference_grpc
from modelyard.governance import bootstrap as governance_bootstrap
from modelyard.governance.testing import governance_settings
from modelyard.kafka.admin import ensure_topics
from modelyard.registry.testing import RunningService, registry_settings
from modelyard.serving import bootstrap as serving_bootstrap
from modelyard.serving.testing import infer_request, service_settings, wait_until
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration

TOKENS = {name: f"{name}-token-0123456789abcdefghij" for name in ("alice", "bob", "carol", "governance", "serving")}
ROLES = {
    "alice": {Role.PUBLISHER},  # the data scientist: trains, logs and registers with MLflow
    "bob": {Role.PUBLISHER, Role.APPROVER},  # asks for the promotion
    "carol": {Role.APPROVER},
    "governance": {Role.SERVICE},
    "serving": {Role.SERVICE},
}
AUTH = AuthSettings(
    tokens={TOKENS[n]: TokenGrant(principal=n, roles=frozenset(r)) for n, r in ROLES.items()}, allow_anonymous=False
)
# The run's own metric is what the gate reads: lineage from MLflow reaches governance.
POLICY = """
version: mlflow-flow
promotions:
  - models: "*"
    alias: production
    checks:
      lineage_metrics: {accuracy: {min: 0.9}}
      signature_compatible: true
    approvals: {count: 1, role: approver}
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[RunningService]:
    settings = registry_settings(
        tmp_path_factory.mktemp("registry"), auth=AUTH, kafka_bootstrap=kafka_bootstrap, check_interval_s=0.05
    )
    with RunningService(settings) as running:
        yield running


@pytest.fixture(scope="module")
def client(registry: RunningService) -> Iterator[MlflowClient]:
    """The MLflow client pointed at the registry's HTTP port with alice's token, as a data scientist sets it up."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_HTTP_REQUEST_MAX_RETRIES")}
    os.environ["MLFLOW_TRACKING_TOKEN"] = TOKENS["alice"]
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"  # a failure shows at once instead of after backoff
    mlflow.set_tracking_uri(registry.http_url)
    yield MlflowClient()
    mlflow.set_tracking_uri(None)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def train_and_register(model: TrainedModel, name: str) -> tuple[str, str, str]:
    """What a training script does with MLflow 3: log the run and the ONNX model (a logged model), and register
    the run's model. Returns the run id, the logged model id and the version."""
    mlflow.set_experiment(f"cancer-{uuid.uuid4().hex[:6]}")
    with mlflow.start_run(run_name="logreg") as run:
        mlflow.log_params({"C": 1.0, "max_iter": 500})
        for step, loss in enumerate((0.6, 0.3, 0.2)):
            mlflow.log_metrics({"loss": loss}, step=step)
        mlflow.log_metric("accuracy", 0.97)
        logged = mlflow.onnx.log_model(onnx.load_from_string(model.onnx), name="model", pip_requirements=["onnx"])
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)  # waits until READY
    return run.info.run_id, logged.model_id, version.version


async def promote(governance_address: str, name: str, version: int) -> None:
    """bob asks, carol approves: governance moves `production` in the registry."""
    async with grpc.aio.insecure_channel(governance_address) as channel:
        stub = gpb_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
        asked = await stub.RequestPromotion(
            gpb.RequestPromotionRequest(model_name=name, version=version, target_alias="production"),
            metadata=(("authorization", f"Bearer {TOKENS['bob']}"),),
        )
        carol = (("authorization", f"Bearer {TOKENS['carol']}"),)
        get = gpb.GetDecisionRequest(request_id=asked.request.request_id)
        async with asyncio.timeout(60):
            while (decided := (await stub.GetDecision(get, metadata=carol)).request).state == "checking":  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        assert decided.state == "awaiting_approval", decided.reason  # the run's accuracy passed the gate
        await stub.Approve(gpb.ApproveRequest(request_id=asked.request.request_id), metadata=carol)


async def test_train_log_register_promote_serve_with_the_stock_mlflow_client(
    registry: RunningService,
    client: MlflowClient,
    kafka_bootstrap: str,
    tmp_path: Path,
    onnx_models: dict[str, TrainedModel],
) -> None:
    await ensure_topics(kafka_bootstrap)
    model, name = onnx_models["breast-cancer"], f"cancer-{uuid.uuid4().hex[:8]}"
    run_id, model_id, version = await asyncio.to_thread(train_and_register, model, name)

    registered = client.get_model_version(name, version)
    assert (registered.status, registered.run_id, registered.source) == ("READY", run_id, f"models:/{model_id}")
    assert client.get_logged_model(model_id).status == LoggedModelStatus.READY
    # The registered version reads back through MLflow's own loader (download URI -> artifact proxy).
    loaded = await asyncio.to_thread(mlflow.onnx.load_model, f"models:/{name}/{version}")
    assert loaded.SerializeToString() == onnx.load_from_string(model.onnx).SerializeToString()
    found = mlflow.search_runs(
        search_all_experiments=True, filter_string="metrics.accuracy > 0.9", output_format="list"
    )
    assert run_id in [r.info.run_id for r in found]
    with pytest.raises(MlflowException, match="modelyard promote"):
        client.set_registered_model_alias(name, "production", version)

    # Lineage: which run, code and parameters produced the model (Modelyard's own API).
    headers = {"authorization": f"Bearer {TOKENS['alice']}"}
    async with httpx.AsyncClient(base_url=registry.http_url, headers=headers) as http:
        native = (await http.get(f"/v1/models/{name}/versions/{version}")).json()
        run = (await http.get(f"/v1/runs/{run_id}")).json()
        as_mlflow = await http.get("/api/2.0/mlflow/model-versions/get", params={"name": name, "version": version})
    assert native["lineage"]["run_id"] == run_id and native["lineage"]["metrics"]["accuracy"] == 0.97
    assert native["signature"]["inputs"][0]["name"] == "X"  # read from the ONNX by registry ingestion
    assert run["params"] == {"C": "1.0", "max_iter": "500"}
    assert native["lineage"]["source"] == f"models:/{model_id}"
    assert as_mlflow.json()["model_version"]["model_id"] == model_id

    (tmp_path / "governance").mkdir()
    (tmp_path / "governance" / "policy.yaml").write_text(POLICY)
    governance = governance_bootstrap.service(
        governance_bootstrap.build(
            governance_settings(
                tmp_path / "governance",
                auth=AUTH,
                kafka_bootstrap=kafka_bootstrap,
                registry_address=registry.grpc_address,
                registry_token=TOKENS["governance"],
                work_interval_s=0.1,
                alias_reconcile_interval_s=0.2,
            )
        )
    )
    async with governance.running():
        governance_address = f"127.0.0.1:{governance.grpc.port}"
        await promote(governance_address, name, int(version))

        def production() -> str:
            try:
                return str(client.get_model_version_by_alias(name, "production").version)
            except MlflowException:
                return ""

        async with asyncio.timeout(60):
            while await asyncio.to_thread(production) != version:  # noqa: ASYNC110
                await asyncio.sleep(0.1)

        serving = serving_bootstrap.service(
            serving_bootstrap.build(
                service_settings(
                    tmp_path / "serving",
                    kafka_bootstrap,
                    plan_source="governance",
                    governance_address=governance_address,
                    artifact_source="registry",
                    registry_address=registry.grpc_address,
                    registry_token=TOKENS["serving"],
                    governance_token=TOKENS["serving"],
                )
            )
        )
        async with serving.running(), grpc.aio.insecure_channel(f"127.0.0.1:{serving.grpc.port}") as channel:
            await wait_until(lambda: serving.readiness.report.ready, timeout_s=60)
            stub = inference_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
            answer = await stub.ModelInfer(infer_request(name, model.sample))
    assert answer.model_name == name and answer.model_version == version
    assert np.frombuffer(answer.raw_output_contents[0], dtype=np.int64).shape[0] == len(model.sample)


def test_mlflow_errors_have_mlflow_shape(registry: RunningService, client: MlflowClient) -> None:
    experiment = client.create_experiment(f"errors-{uuid.uuid4().hex[:6]}")
    run = client.create_run(experiment)
    with pytest.raises(MlflowException, match="INVALID_PARAMETER_VALUE") as bad_filter:
        client.search_runs([experiment], filter_string="metrics.loss < 'low'")
    assert "invalid filter" in str(bad_filter.value)
    client.log_param(run.info.run_id, "C", "1.0")
    with pytest.raises(MlflowException, match="logged once"):
        client.log_param(run.info.run_id, "C", "2.0")
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        client.get_run(uuid.uuid4().hex)

    with httpx.Client(base_url=registry.http_url) as http:
        unsupported = http.post(
            "/api/2.0/mlflow/traces", json={}, headers={"authorization": f"Bearer {TOKENS['alice']}"}
        )
        anonymous = http.get("/api/2.0/mlflow/runs/get", params={"run_id": run.info.run_id})
        garbage = http.post(
            "/api/2.0/mlflow/runs/log-batch",
            json={"run_id": run.info.run_id, "metrics": [{"key": "x", "value": "high"}]},
            headers={"authorization": f"Bearer {TOKENS['alice']}"},
        )
    assert unsupported.status_code == 404 and unsupported.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert "POST /api/2.0/mlflow/traces" in unsupported.json()["message"]
    assert anonymous.status_code == 401 and anonymous.json()["error_code"] == "UNAUTHENTICATED"
    assert garbage.status_code == 400 and garbage.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert client.get_run(run.info.run_id).data.metrics == {}  # the refused batch left nothing
