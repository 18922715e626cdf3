"""Every interface of every service answers bad input with a client error, never UNKNOWN / INTERNAL / 5xx.

The four services run as `python -m modelyard.<name>` builds them, on loopback, with real SQLite and the test
broker; governance and the monitor ask the real registry. Every gRPC method of each service's descriptor gets
random valid messages and random bytes (hypothesis), every operation of each service's OpenAPI document gets
cases that fit the schema and cases that do not (schemathesis). Bounded and derandomized: the same examples on
every run, a few seconds per service.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from modelyard.contracts.governance.v1 import governance_service_pb2
from modelyard.contracts.inference import grpc_service_pb2
from modelyard.contracts.monitor.v1 import monitor_service_pb2
from modelyard.contracts.registry.v1 import registry_service_pb2
from modelyard.contracts.serving.v1 import explanation_service_pb2
from modelyard.governance import bootstrap as governance_bootstrap
from modelyard.governance.testing import governance_settings
from modelyard.kafka.admin import ensure_topics
from modelyard.monitor import bootstrap as monitor_bootstrap
from modelyard.monitor.config import MonitorSettings
from modelyard.monitor.testing import setting_values
from modelyard.registry import bootstrap as registry_bootstrap
from modelyard.registry.testing import registry_settings
from modelyard.runtime import Service
from modelyard.runtime.errors import MAX_MESSAGE_CHARS
from modelyard.serving import bootstrap as serving_bootstrap
from modelyard.serving.testing import ModelRepository, plan, settings_for, wait_until
from modelyard.testing.fuzz import FuzzReport, fuzz_grpc, fuzz_rest
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration

GRPC_EXAMPLES = 8
REST_EXAMPLES = 6
SERVICES = {
    "registry": [registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"]],
    "governance": [governance_service_pb2.DESCRIPTOR.services_by_name["GovernanceService"]],
    "monitor": [monitor_service_pb2.DESCRIPTOR.services_by_name["MonitorService"]],
    "serving": [
        grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"],
        explanation_service_pb2.DESCRIPTOR.services_by_name["ExplanationService"],
    ],
}


@contextlib.asynccontextmanager
async def running(name: str, tmp: Path, kafka_bootstrap: str, model: TrainedModel) -> AsyncIterator[Service]:
    """The service `name`, and the registry it asks (itself, for the registry)."""
    async with registry_bootstrap.service(
        registry_bootstrap.build(registry_settings(tmp / "registry", kafka_bootstrap=kafka_bootstrap))
    ).running() as registry:
        registry_address = f"127.0.0.1:{registry.grpc.port}"
        if name == "registry":
            yield registry
            return
        if name == "governance":
            # Governance asks the real monitor too (prediction traces): a peer that is down is not bad input.
            async with _monitor(tmp / "monitor", kafka_bootstrap, registry_address).running() as monitor:
                settings = governance_settings(
                    tmp,
                    registry_address=registry_address,
                    monitor_address=f"127.0.0.1:{monitor.grpc.port}",
                    kafka_bootstrap=kafka_bootstrap,
                )
                async with governance_bootstrap.service(governance_bootstrap.build(settings)).running() as service:
                    await wait_until(lambda: service.ready)
                    yield service
            return
        if name == "monitor":
            service = _monitor(tmp, kafka_bootstrap, registry_address)
        else:
            repository = ModelRepository(tmp)
            repository.write_plans(plan(repository.add("breast_cancer", 1, model.onnx)))
            service = serving_bootstrap.service(
                serving_bootstrap.build(settings_for(tmp, kafka_bootstrap=kafka_bootstrap))
            )
        async with service.running():
            # Fuzz what a load balancer would send traffic to: before its plans are served, serving rightly
            # answers UNAVAILABLE for every model, which is not the bad-input answer under test.
            await wait_until(lambda: service.ready)
            yield service


def _monitor(tmp: Path, kafka_bootstrap: str, registry_address: str) -> Service:
    tmp.mkdir(exist_ok=True)
    values = setting_values(kafka_bootstrap, tmp)
    settings = {**values, "reference_source": "registry", "registry_address": registry_address}
    return monitor_bootstrap.service(monitor_bootstrap.build(MonitorSettings.model_validate(settings)))


def _explain(report: FuzzReport) -> str:
    return f"{report.calls} calls, statuses {dict(report.statuses)}; server errors:\n" + "\n".join(report.server_errors)


@pytest.mark.parametrize("name", list(SERVICES))
async def test_bad_input_gets_a_client_error(
    name: str, tmp_path: Path, kafka_bootstrap: str, onnx_models: dict[str, TrainedModel]
) -> None:
    await ensure_topics(kafka_bootstrap)
    async with running(name, tmp_path, kafka_bootstrap, onnx_models["breast-cancer"]) as service:
        grpc_reports = [
            await asyncio.to_thread(fuzz_grpc, f"127.0.0.1:{service.grpc.port}", api, GRPC_EXAMPLES)
            for api in SERVICES[name]
        ]
        rest_report = await asyncio.to_thread(fuzz_rest, f"http://127.0.0.1:{service.http.port}", REST_EXAMPLES)
    for report in grpc_reports:
        print(f"{name} gRPC: {_explain(report)}")
        assert not report.server_errors, _explain(report)
    print(f"{name} REST: {_explain(rest_report)}")
    assert not rest_report.server_errors, _explain(rest_report)


async def test_the_reported_bad_inputs_get_client_errors(
    tmp_path: Path, kafka_bootstrap: str, onnx_models: dict[str, TrainedModel]
) -> None:
    """The cases of issue 12: deep JSON, huge dimensions, bodies over the limit, a registry's INVALID_ARGUMENT."""
    await ensure_topics(kafka_bootstrap)
    model = onnx_models["breast-cancer"]
    async with running("serving", tmp_path, kafka_bootstrap, model) as serving, httpx.AsyncClient() as http:
        http.base_url = httpx.URL(f"http://127.0.0.1:{serving.http.port}")
        infer = "/v2/models/breast_cancer/infer"
        deep = await http.post(infer, content=b"[" * 100_000 + b"]" * 100_000)
        assert deep.status_code == 400, deep.text
        entry = {"name": "X", "datatype": "FP32", "shape": [10**30], "data": [1.0]}
        huge = await http.post(infer, json={"inputs": [entry]})
        assert huge.status_code == 400, huge.text
        too_long = await http.post(infer, content=b" " * (8 << 20) + b"{}")
        assert too_long.status_code == 413, too_long.text
    async with running("governance", tmp_path / "g", kafka_bootstrap, model) as governance, httpx.AsyncClient() as http:
        http.base_url = httpx.URL(f"http://127.0.0.1:{governance.http.port}")
        card = await http.get("/v1/models/credit/versions/0/card")  # the registry: INVALID_ARGUMENT
        assert card.status_code == 400, card.text
        assert card.json()["code"] == "INVALID_ARGUMENT"
        body = await http.post("/v1/promotions", content=b"[1, 2]")
        assert body.status_code == 400, body.text
        assert len(body.json()["message"]) <= MAX_MESSAGE_CHARS
