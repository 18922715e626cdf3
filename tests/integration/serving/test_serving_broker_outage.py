"""A broker outage is not a prediction outage: serving keeps answering and stays ready, and says it is degraded.

The whole serving service on an embedded broker of the test's own, which the test stops while traffic flows.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import httpx
import pytest

from modelyard.contracts.inference import grpc_service_pb2_grpc as pb_grpc
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.embedded import EmbeddedBroker
from modelyard.serving import bootstrap as serving_bootstrap
from modelyard.serving.testing import ModelRepository, eventually, infer_request, service_settings
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration


async def test_serving_stays_ready_and_answers_through_a_broker_outage_and_reports_it_degraded(
    repository: ModelRepository, breast_cancer: TrainedModel, tmp_path: Path
) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log")
    broker.start()
    try:
        await ensure_topics(broker.bootstrap)
        service = serving_bootstrap.service(
            serving_bootstrap.build(service_settings(repository.root, broker.bootstrap))
        )
        async with (
            service.running(),
            grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}") as channel,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http.port}") as http,
        ):
            stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]

            async def answers() -> int:
                replies = await asyncio.gather(
                    *(
                        stub.ModelInfer(infer_request("breast_cancer", breast_cancer.sample[:1], f"r{i}"))
                        for i in range(20)
                    ),
                    return_exceptions=True,
                )
                return sum(1 for reply in replies if not isinstance(reply, BaseException))

            async def ready_and_clean() -> bool:
                report = await http.get("/readyz")
                return report.status_code == 200 and report.json()["degraded"] == {}

            await eventually(ready_and_clean)
            assert await answers() == 20

            broker.stop()  # the outage

            async def ready_but_degraded() -> bool:
                await answers()  # traffic keeps the prediction stream trying
                report = await http.get("/readyz")
                return report.status_code == 200 and {"kafka", "prediction-stream"} <= set(report.json()["degraded"])

            await eventually(ready_but_degraded)
            assert await answers() == 20  # every request answered during the outage
            metrics = (await http.get("/metrics")).text
            assert 'modelyard_degraded{service="serving"} 1.0' in metrics
            assert 'modelyard_ready{service="serving"} 1.0' in metrics
    finally:
        broker.stop()
